package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/stoa-rtc/stoa/internal/busauth"
)

// Heartbeats, dispatcher keys and blocks are stored signed by the node that wrote them, as
//
//	{"record": <the record's JSON>, "identity": "<the writer's NATS user JWT>", "sig": "<base64 Ed25519>"}
//
// where sig signs "stoa bus record v1", NUL, the kind ("edge", "dispatcher_key", "block"), NUL and the record's
// exact bytes (busauth.Credentials.Sign). A node whose credentials name a Stoa identity signs what it writes and
// reads only records whose writer's JWT was issued by its own account, names the role the kind needs, the
// record's region and its id (busauth.Identity.Allows), and whose signature verifies; anything else is ignored
// (logged and counted, see RefusedRecords) and the node keeps its last good copy. So a process that can write to
// the bus but holds no such credentials cannot list an edge, publish a ticket key or block an address.

// The kinds of signed record.
const (
	kindEdge          = "edge"
	kindDispatcherKey = "dispatcher_key"
	kindBlock         = "block"
)

// envelope is the stored form of a signed record.
type envelope struct {
	Record   json.RawMessage `json:"record"`
	Identity string          `json:"identity,omitempty"`
	Sig      []byte          `json:"sig,omitempty"`
}

// writer says who may write a record: a node of role in region with id (empty: any node of the role).
type writer struct {
	role   busauth.Role
	region string
	id     string
}

func (e EdgeInfo) signer() writer { return writer{busauth.RoleEdge, e.Region, e.ID} }

func (k DispatcherKey) signer() writer { return writer{busauth.RoleDispatch, k.Region, k.ID} }

// signer of a block: an edge's or a dispatcher's guard of its region, named in By.
func (b Block) signer() writer { return writer{"", b.Region, b.By} }

func (w writer) allowedBy(id busauth.Identity) bool {
	if w.role == "" { // blocks: either role, under its own id (not shared credentials, see busauth.Permissions)
		return !id.AnyID && (id.Allows(busauth.RoleEdge, w.region, w.id) || id.Allows(busauth.RoleDispatch, w.region, w.id))
	}
	return id.Allows(w.role, w.region, w.id)
}

// loadCredentials reads the node's credentials, if any, and trusts their account's signed records when they name
// a Stoa identity.
func (c *Cluster) loadCredentials() error {
	b := c.cfg.Credentials
	if b == nil && c.cfg.CredentialsFile != "" {
		var err error
		if b, err = os.ReadFile(c.cfg.CredentialsFile); err != nil {
			return fmt.Errorf("cluster: credentials_file: %w", err)
		}
	}
	if b == nil {
		c.log.Warn("no bus credentials: heartbeats, dispatcher keys and blocks are neither signed nor checked")
		return nil
	}
	creds, err := busauth.ParseCredentials(b)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	c.creds = creds
	if id, ok := creds.Identity(); ok {
		c.verifier = busauth.NewVerifier(creds.Account())
		c.log.Info("bus identity", "identity", id.String(), "account", creds.Account())
	} else {
		c.log.Warn("the bus credentials name no Stoa identity: records are neither signed nor checked")
	}
	return nil
}

// BusIdentity returns the node's bus credentials and the verifier of its account's credentials, when the
// credentials name a Stoa identity; nil, nil otherwise. Relay links use them to prove and check edge identities.
func (c *Cluster) BusIdentity() (*busauth.Credentials, *busauth.Verifier) {
	if c.verifier == nil {
		return nil, nil
	}
	return c.creds, c.verifier
}

// sealed returns the stored form of record v of kind: an envelope, signed when the node has an identity. A record
// the node's identity may not sign is refused here, with the reason, rather than written and ignored by every
// reader.
func (c *Cluster) sealed(kind string, v interface{ signer() writer }) (json.RawMessage, error) {
	if c.verifier != nil {
		if id, _ := c.creds.Identity(); !v.signer().allowedBy(id) {
			w := v.signer()
			return nil, fmt.Errorf("cluster: %s %q of region %q: the bus credentials (%s) do not allow writing it",
				kind, w.id, w.region, id)
		}
	}
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cluster: encode: %w", err)
	}
	env := envelope{Record: body}
	if c.verifier != nil {
		env.Identity, env.Sig = c.creds.JWT(), c.creds.Sign(kind, body)
	}
	return json.Marshal(env)
}

// RefusedRecords counts the heartbeats, dispatcher keys and blocks this node ignored because they were not signed
// by a node allowed to write them.
func (c *Cluster) RefusedRecords() uint64 { return c.refused.Load() }

var errUnsigned = errors.New("not signed by a node allowed to write it")

// opened wraps decode, the decoder of a record of kind kept in a bucket of region (empty: a global bucket), to
// read it out of its envelope, refuse it if it claims another region and, when the node checks signatures,
// refuse it unless signed by a node allowed to write it.
func opened[K comparable, V interface{ signer() writer }](c *Cluster, kind, region string,
	decode func(K, []byte) (V, error)) func(K, []byte) (V, error) {
	return func(k K, data []byte) (V, error) {
		var env envelope
		if err := json.Unmarshal(data, &env); err != nil || env.Record == nil {
			var zero V
			c.refuse()
			return zero, fmt.Errorf("%s: not a record envelope", kind)
		}
		v, err := decode(k, env.Record)
		if err != nil {
			return v, err
		}
		w := v.signer()
		if region != "" && w.region != region {
			c.refuse()
			return v, fmt.Errorf("%s: region %q in the bucket of %q", kind, w.region, region)
		}
		if c.verifier == nil {
			return v, nil
		}
		id, err := c.verifier.Verify(env.Identity, kind, env.Record, env.Sig, time.Now().Unix())
		if err != nil {
			c.refuse()
			return v, err
		}
		if !w.allowedBy(id) {
			c.refuse()
			return v, fmt.Errorf("%s: %w (signed by %s)", kind, errUnsigned, id)
		}
		return v, nil
	}
}

func (c *Cluster) refuse() { c.refused.Add(1) }
