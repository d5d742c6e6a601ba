package token

import (
	"bytes"
	"cmp"
	"compress/zlib"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"
)

// Version is the prefix of every AccessToken2 token.
const Version = "007"

// Limits on hostile input.
const (
	// MaxTokenLength is the longest token accepted; longer ones are refused before any decoding.
	MaxTokenLength = 4096
	// maxContentLength bounds the decompressed content so that a "zlib bomb" fails after a few KiB of work.
	// A token of 4 KiB carries at most 3 KiB of zlib data; real content is rarely over 1 KiB.
	maxContentLength = 16 << 10
	// MaxSalt is the largest salt the builders of this package choose (they choose from 1..MaxSalt).
	MaxSalt = 99999999
)

// Token is a decoded AccessToken2. To build one, fill AppID, IssueTS, Expire, Salt and Services (or use [BuildRTC])
// and call [Token.Build]; to check one, [Parse] it and call [Token.Verify].
type Token struct {
	AppID string
	// IssueTS is the issue time in Unix seconds.
	IssueTS uint32
	// Expire is the token's lifetime in seconds after IssueTS.
	Expire uint32
	// Salt makes tokens built in the same second differ; builders pick it at random from 1..MaxSalt.
	Salt uint32
	// Services in the order of the token (builders write them in ascending type order).
	Services []Service

	// signature and signingInfo are what a parsed token carried: the signature is checked over these exact bytes,
	// never over a re-encoding.
	signature   []byte
	signingInfo []byte
}

// IssuedAt returns the issue time.
func (t *Token) IssuedAt() time.Time { return time.Unix(int64(t.IssueTS), 0) }

// ExpiresAt returns the time at which the token expires (and is no longer valid).
func (t *Token) ExpiresAt() time.Time { return t.IssuedAt().Add(time.Duration(t.Expire) * time.Second) }

// PrivilegeExpiresAt returns the time at which a privilege with lifetime seconds expires.
func (t *Token) PrivilegeExpiresAt(seconds uint32) time.Time {
	return t.IssuedAt().Add(time.Duration(seconds) * time.Second)
}

// AddService appends s; Build writes services in ascending type order.
func (t *Token) AddService(s Service) { t.Services = append(t.Services, s) }

// Build signs the token with appCertificate and returns its string form. App ID and certificate must each be 32
// hexadecimal characters, as every AccessToken2 builder requires, and the token must carry at least one service.
func (t *Token) Build(appCertificate string) (string, error) {
	if !isHex32(t.AppID) {
		return "", invalidInput("app id must be 32 hexadecimal characters")
	}
	if !isHex32(appCertificate) {
		return "", invalidInput("app certificate must be 32 hexadecimal characters")
	}
	if len(t.Services) == 0 {
		return "", invalidInput("a token needs at least one service")
	}
	info, err := t.appendSigningInfo(make([]byte, 0, 256))
	if err != nil {
		return "", err
	}
	sig := sign(appCertificate, t.IssueTS, t.Salt, info)
	content := append(appendU16(make([]byte, 0, 2+len(sig)+len(info)), uint16(len(sig))), sig...)
	content = append(content, info...)

	var z bytes.Buffer
	zw, _ := zlibWriters.Get().(*zlib.Writer)
	if zw == nil {
		zw = zlib.NewWriter(&z)
	} else {
		zw.Reset(&z)
	}
	zw.Write(content) // writes to a bytes.Buffer cannot fail
	zw.Close()
	zlibWriters.Put(zw)
	return Version + base64.StdEncoding.EncodeToString(z.Bytes()), nil
}

// A zlib writer costs over 800 KB to make; builders reuse them.
var zlibWriters sync.Pool // of *zlib.Writer

func (t *Token) appendSigningInfo(b []byte) ([]byte, error) {
	b, err := appendString(b, t.AppID)
	if err != nil {
		return b, err
	}
	b = appendU32(b, t.IssueTS)
	b = appendU32(b, t.Expire)
	b = appendU32(b, t.Salt)
	if len(t.Services) > 0xffff {
		return b, invalidInput("too many services")
	}
	b = appendU16(b, uint16(len(t.Services)))
	services := slices.Clone(t.Services)
	slices.SortStableFunc(services, func(a, b Service) int { return cmp.Compare(a.Type, b.Type) })
	for i := range services {
		if b, err = services[i].appendTo(b); err != nil {
			return b, err
		}
	}
	return b, nil
}

// sign computes the AccessToken2 signature of signingInfo.
func sign(appCertificate string, issueTS, salt uint32, signingInfo []byte) []byte {
	var le [4]byte
	binary.LittleEndian.PutUint32(le[:], issueTS)
	h := hmac.New(sha256.New, le[:])
	h.Write([]byte(appCertificate))
	k1 := h.Sum(nil)
	binary.LittleEndian.PutUint32(le[:], salt)
	h = hmac.New(sha256.New, le[:])
	h.Write(k1)
	k2 := h.Sum(nil)
	h = hmac.New(sha256.New, k2)
	h.Write(signingInfo)
	return h.Sum(nil)
}

// checkSignature reports whether the token was signed with appCertificate, in constant time.
func (t *Token) checkSignature(appCertificate string) bool {
	if t.signingInfo == nil {
		return false
	}
	return hmac.Equal(sign(appCertificate, t.IssueTS, t.Salt, t.signingInfo), t.signature)
}

// Parse decodes an AccessToken2 token without verifying it. It refuses tokens longer than MaxTokenLength, bounds the
// decompressed size, and treats unknown service types, bytes left after the last service and counts larger than
// what follows as malformed. The error always matches ErrMalformed.
func Parse(s string) (*Token, error) {
	content, err := decode(s)
	if err != nil {
		return nil, err
	}
	return parseContent(content)
}

func decode(s string) ([]byte, error) {
	if len(s) > MaxTokenLength {
		return nil, malformed("token is %d bytes, longer than the limit of %d", len(s), MaxTokenLength)
	}
	if !strings.HasPrefix(s, Version) {
		if strings.HasPrefix(s, version006) {
			return nil, malformed("version 006 token: use Parse006")
		}
		return nil, malformed("not a version 007 token")
	}
	body := s[len(Version):]
	raw, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		// Some builders and transports drop the padding; the content is the same.
		if raw, err = base64.RawStdEncoding.DecodeString(body); err != nil {
			return nil, malformed("bad base64")
		}
	}
	return inflate(raw)
}

var zlibReaders sync.Pool // of io.ReadCloser implementing zlib.Resetter

// inflate decompresses zlib data, refusing more than maxContentLength bytes of output.
func inflate(raw []byte) ([]byte, error) {
	src := bytes.NewReader(raw)
	var zr io.ReadCloser
	if pooled, ok := zlibReaders.Get().(io.ReadCloser); ok {
		if err := pooled.(zlib.Resetter).Reset(src, nil); err != nil {
			return nil, malformed("bad zlib header")
		}
		zr = pooled
	} else {
		var err error
		if zr, err = zlib.NewReader(src); err != nil {
			return nil, malformed("bad zlib header")
		}
	}
	defer zlibReaders.Put(zr)

	out := make([]byte, 0, 512)
	for {
		if len(out) == cap(out) {
			if len(out) > maxContentLength {
				return nil, malformed("content is larger than %d bytes after decompression", maxContentLength)
			}
			out = slices.Grow(out, min(2*len(out), maxContentLength+1)-len(out))
		}
		n, err := zr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if len(out) > maxContentLength {
			return nil, malformed("content is larger than %d bytes after decompression", maxContentLength)
		}
		if err == io.EOF {
			return out, nil // the zlib reader has checked the Adler-32 checksum
		}
		if err != nil {
			if errors.Is(err, zlib.ErrChecksum) {
				return nil, malformed("bad zlib checksum")
			}
			return nil, malformed("bad zlib data")
		}
	}
}

func parseContent(content []byte) (*Token, error) {
	r := &reader{b: content}
	t := &Token{}
	t.signature = r.bytes("signature")
	infoStart := r.off
	t.AppID = r.string("app id")
	t.IssueTS = r.u32("issue time")
	t.Expire = r.u32("expire")
	t.Salt = r.u32("salt")
	n := r.count("service", 4) // type + privilege count
	for range n {
		st := ServiceType(r.u16("service type"))
		s := readService(r, st)
		if r.err != nil {
			break
		}
		t.Services = append(t.Services, s)
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.remaining() != 0 {
		return nil, malformed("%d bytes left after the last service", r.remaining())
	}
	if len(t.signature) != sha256.Size {
		return nil, malformed("signature is %d bytes, not %d", len(t.signature), sha256.Size)
	}
	t.signingInfo = content[infoStart:]
	return t, nil
}

func isHex32(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// RandomSalt returns a salt from crypto/rand in 1..MaxSalt, as builders choose it.
func RandomSalt() uint32 {
	n, err := rand.Int(rand.Reader, big.NewInt(MaxSalt))
	if err != nil {
		panic("token: crypto/rand failed: " + err.Error()) // the system is unusable for cryptography
	}
	return uint32(n.Int64()) + 1
}
