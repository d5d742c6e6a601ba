package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stoa-rtc/stoa/token"
)

const appCertEnv = "STOA_APP_CERT"

func tokenCommand() *command {
	return &command{
		name:    "token",
		summary: "build, inspect and verify AccessToken2 tokens",
		subcommands: []*command{
			tokenBuildCommand(),
			tokenInspectCommand(),
			tokenVerifyCommand(),
		},
	}
}

func tokenBuildCommand() *command {
	var (
		appID, channel, account, role string
		uid                           string
		expire, privExpire            uint64
		issuedAt                      int64
		salt                          uint64
		cert                          *secretFlag
	)
	return &command{
		name:    "build",
		summary: "build an RTC token, as an app server does",
		usage: `stoa token build --app-id ID --app-cert CERT --channel NAME (--uid N | --account S) [--role publisher|subscriber|recorder]
                 [--expire SECONDS] [--privilege-expire SECONDS] [--issued-at UNIX] [--salt N]

Prints an AccessToken2 ("007") token that admits the uid or user account to the channel. --uid 0 makes a
wildcard token that admits any uid. A publisher may join and publish audio, video and data; a subscriber
may only join; a recorder may join, and join hidden (Stoa's privilege 100: never announced to the
channel, unable to publish; see docs/recording.md). Lifetimes are seconds after the issue time.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&appID, "app-id", "", "App ID (32 hexadecimal characters)")
			cert = newSecretFlag(fs, "app-cert", appCertEnv, "App Certificate")
			fs.StringVar(&channel, "channel", "", "channel name")
			fs.StringVar(&uid, "uid", "", "numeric uid, 0..4294967295 (0: any uid)")
			fs.StringVar(&account, "account", "", "user account (a string uid)")
			fs.StringVar(&role, "role", "publisher", "publisher, subscriber or recorder")
			fs.Uint64Var(&expire, "expire", 3600, "token lifetime in seconds")
			fs.Uint64Var(&privExpire, "privilege-expire", 0, "privilege lifetime in seconds (default: --expire)")
			fs.Int64Var(&issuedAt, "issued-at", 0, "issue time in Unix seconds (default: now)")
			fs.Uint64Var(&salt, "salt", 0, "salt (default: random in 1..99999999)")
		},
		run: func(_ context.Context, args []string, env *cmdEnv) error {
			if err := env.parseNoArgs(args); err != nil {
				return err
			}
			appCert, err := cert.require()
			if err != nil {
				return err
			}
			if appID == "" || channel == "" {
				return usagef("--app-id and --channel are required")
			}
			o := token.RTCOptions{AppID: appID, Channel: channel}
			switch uidSet, accountSet := flagSet(env.fs, "uid"), flagSet(env.fs, "account"); {
			case uidSet == accountSet:
				return usagef("give exactly one of --uid and --account")
			case uidSet:
				n, err := strconv.ParseUint(uid, 10, 32)
				if err != nil {
					return usagef("--uid must be a number from 0 to 4294967295")
				}
				o.UID = token.UIDString(uint32(n))
			default:
				o.UID = account
			}
			switch role {
			case "publisher":
				o.Role = token.RolePublisher
			case "subscriber":
				o.Role = token.RoleSubscriber
			case "recorder":
				o.Role = token.RoleRecorder
			default:
				return usagef("--role must be publisher, subscriber or recorder")
			}
			if !flagSet(env.fs, "privilege-expire") {
				privExpire = expire
			}
			for name, v := range map[string]uint64{"expire": expire, "privilege-expire": privExpire, "salt": salt} {
				if v > math.MaxUint32 {
					return usagef("--%s must be at most %d", name, uint32(math.MaxUint32))
				}
			}
			if issuedAt < 0 || issuedAt > math.MaxUint32 {
				return usagef("--issued-at must be a Unix time from 0 to %d", uint32(math.MaxUint32))
			}
			o.Expire = time.Duration(expire) * time.Second
			t, err := token.NewRTCToken(o)
			if err != nil {
				return err
			}
			// Explicit values, including 0, are kept as given so that output can be compared with other builders.
			for _, p := range o.Role.Privileges() {
				t.Services[0].Privileges[p] = uint32(privExpire)
			}
			if flagSet(env.fs, "issued-at") {
				t.IssueTS = uint32(issuedAt)
			}
			if flagSet(env.fs, "salt") {
				t.Salt = uint32(salt)
			}
			s, err := t.Build(appCert)
			if err != nil {
				return err
			}
			fmt.Fprintln(env.stdout, s)
			return nil
		},
	}
}

func tokenInspectCommand() *command {
	return &command{
		name:    "inspect",
		summary: "decode a token and print its fields as JSON (no verification)",
		usage: `stoa token inspect TOKEN

Prints {"version","app_id","issue_ts","expire","salt","services":[...]}; each service has "type" and
"privileges" (keyed by privilege number) and the fields of its type. TOKEN "-" reads the token from stdin.
Exits non-zero with the reason for a malformed token.`,
		run: func(_ context.Context, args []string, env *cmdEnv) error {
			s, err := tokenArg(env, args)
			if err != nil {
				return err
			}
			var v any
			if strings.HasPrefix(s, "006") {
				t, err := token.Parse006(s)
				if err != nil {
					return err
				}
				v = inspect006(t)
			} else {
				t, err := token.Parse(s)
				if err != nil {
					return err
				}
				v = inspect007(t)
			}
			enc := json.NewEncoder(env.stdout)
			enc.SetEscapeHTML(false)
			return enc.Encode(v)
		},
	}
}

func tokenVerifyCommand() *command {
	var (
		appID, channel, uid string
		now                 int64
		cert                *secretFlag
	)
	return &command{
		name:    "verify",
		summary: "verify a token offline with its App Certificate",
		usage: `stoa token verify --app-cert CERT [--app-id ID] [--channel C] [--uid U] [--now UNIX] TOKEN

Checks the signature, then that the token is for --app-id, has an RTC service for --channel and --uid
(a token for uid 0 admits any uid) that grants joining, and that neither the token nor any privilege of
the checked services has expired at --now (default: the current time). Without --channel and --uid every
service is checked. Prints "valid" and exits 0, or prints the reason and exits 1.`,
		flags: func(fs *flag.FlagSet) {
			cert = newSecretFlag(fs, "app-cert", appCertEnv, "App Certificate")
			fs.StringVar(&appID, "app-id", "", "expected App ID")
			fs.StringVar(&channel, "channel", "", "channel the token must grant")
			fs.StringVar(&uid, "uid", "", "uid or user account the token must admit")
			fs.Int64Var(&now, "now", 0, "verify as of this Unix time (default: now)")
		},
		run: func(_ context.Context, args []string, env *cmdEnv) error {
			s, err := tokenArg(env, args)
			if err != nil {
				return err
			}
			appCert, err := cert.require()
			if err != nil {
				return err
			}
			at := time.Now()
			if flagSet(env.fs, "now") {
				at = time.Unix(now, 0)
			}
			want := token.Expect{AppID: appID, Channel: channel, UID: uid}
			if strings.HasPrefix(s, "006") {
				t, perr := token.Parse006(s)
				if perr != nil {
					return perr
				}
				_, err = t.Verify(appCert, want, at)
			} else {
				t, perr := token.Parse(s)
				if perr != nil {
					return perr
				}
				err = t.Verify(appCert, want, at)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(env.stdout, "valid")
			return nil
		},
	}
}

// tokenArg returns the single TOKEN argument; "-" reads it from stdin.
func tokenArg(env *cmdEnv, args []string) (string, error) {
	rest, err := env.parse(args)
	if err != nil {
		return "", err
	}
	if len(rest) != 1 {
		return "", usagef("expected one TOKEN argument, got %d", len(rest))
	}
	if rest[0] != "-" {
		return strings.TrimSpace(rest[0]), nil
	}
	b, err := io.ReadAll(io.LimitReader(os.Stdin, token.MaxTokenLength+2))
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New("no token on stdin")
	}
	return s, nil
}

type inspectedToken struct {
	Version  string             `json:"version"`
	AppID    string             `json:"app_id"`
	IssueTS  uint32             `json:"issue_ts"`
	Expire   uint32             `json:"expire"`
	Salt     uint32             `json:"salt"`
	Services []inspectedService `json:"services"`
}

// inspectedService has a field for every service type; pointers leave out the fields a type does not have and keep
// the empty strings of those it has.
type inspectedService struct {
	Type        uint16                         `json:"type"`
	Privileges  map[string]uint32              `json:"privileges"`
	Channel     *string                        `json:"channel,omitempty"`
	UID         *string                        `json:"uid,omitempty"`
	UserID      *string                        `json:"user_id,omitempty"`
	RoomUUID    *string                        `json:"room_uuid,omitempty"`
	UserUUID    *string                        `json:"user_uuid,omitempty"`
	Role        *int16                         `json:"role,omitempty"`
	Permissions map[string]map[string][]string `json:"permissions,omitempty"`
}

func inspect007(t *token.Token) inspectedToken {
	out := inspectedToken{Version: token.Version, AppID: t.AppID, IssueTS: t.IssueTS, Expire: t.Expire, Salt: t.Salt,
		Services: []inspectedService{}}
	for _, s := range t.Services {
		j := inspectedService{Type: uint16(s.Type), Privileges: privilegesJSON(s.Privileges)}
		switch s.Type {
		case token.ServiceRTC, token.ServiceStreaming, token.ServiceFCDN:
			j.Channel, j.UID = &s.Channel, &s.UID
		case token.ServiceRTM, token.ServiceChat:
			j.UserID = &s.UserID
		case token.ServiceAPaaS:
			j.RoomUUID, j.UserUUID, j.Role = &s.RoomUUID, &s.UserUUID, &s.Role
		case token.ServiceRTM2:
			j.UserID = &s.UserID
			j.Permissions = map[string]map[string][]string{}
			for res, perms := range s.Permissions {
				inner := map[string][]string{}
				for p, names := range perms {
					inner[strconv.Itoa(int(p))] = names
				}
				j.Permissions[strconv.Itoa(int(res))] = inner
			}
		}
		out.Services = append(out.Services, j)
	}
	return out
}

func privilegesJSON(m map[token.Privilege]uint32) map[string]uint32 {
	out := make(map[string]uint32, len(m))
	for p, v := range m {
		out[strconv.Itoa(int(p))] = v
	}
	return out
}

func inspect006(t *token.Token006) any {
	return struct {
		Version    string            `json:"version"`
		AppID      string            `json:"app_id"`
		Salt       uint32            `json:"salt"`
		Expire     uint32            `json:"expire_ts"`
		ChannelCRC uint32            `json:"channel_crc32"`
		UIDCRC     uint32            `json:"uid_crc32"`
		Privileges map[string]uint32 `json:"privileges"`
	}{"006", t.AppID, t.Salt, t.TS, t.ChannelCRC, t.UIDCRC, privilegesJSON(t.Privileges)}
}
