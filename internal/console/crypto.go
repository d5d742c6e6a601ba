package console

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/crypto/argon2"
)

// keySize is the size of the at-rest encryption key: AES-256.
const keySize = 32

// loadOrCreateKey reads the 32-byte key in path, creating it with mode 0600 and random contents if it does not
// exist. A key file readable by group or others is refused.
func loadOrCreateKey(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("console: no key file")
	}
	key := make([]byte, keySize)
	rand.Read(key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		_, werr := f.Write(key)
		cerr := f.Close()
		if werr != nil || cerr != nil {
			os.Remove(path)
			return nil, fmt.Errorf("console: write key file: %w", errors.Join(werr, cerr))
		}
		return key, nil
	case !errors.Is(err, fs.ErrExist):
		return nil, fmt.Errorf("console: create key file: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("console: key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("console: key file %s has mode %04o; it must not be readable by group or others", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("console: key file: %w", err)
	}
	if len(b) != keySize {
		return nil, fmt.Errorf("console: key file %s holds %d bytes, want %d", path, len(b), keySize)
	}
	return b, nil
}

// sealer encrypts values at rest with AES-256-GCM: nonce (12 random bytes) || ciphertext || tag.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// seal encrypts plaintext bound to ad (the App ID, so that ciphertexts cannot be swapped between projects).
func (s *sealer) seal(plaintext, ad string) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, []byte(plaintext), []byte(ad))
}

func (s *sealer) open(ciphertext []byte, ad string) (string, error) {
	n := s.aead.NonceSize()
	if len(ciphertext) < n+s.aead.Overhead() {
		return "", errors.New("console: ciphertext too short")
	}
	p, err := s.aead.Open(nil, ciphertext[:n], ciphertext[n:], []byte(ad))
	if err != nil {
		return "", errors.New("console: certificate does not decrypt with the key file")
	}
	return string(p), nil
}

// Argon2Params are the argon2id (RFC 9106) cost parameters for new password hashes. Existing hashes keep the
// parameters they were made with, which their PHC string records.
type Argon2Params struct {
	Time    uint32 // passes over memory
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultArgon2 is OWASP's recommended argon2id configuration: 19 MiB, 2 passes, 1 lane; 16-byte salt and
// 32-byte output.
var DefaultArgon2 = Argon2Params{Time: 2, Memory: 19 * 1024, Threads: 1}

const (
	saltLen = 16
	hashLen = 32
)

// hashPassword returns the PHC string of password: $argon2id$v=19$m=M,t=T,p=P$salt$hash (unpadded base64).
func hashPassword(password string, p Argon2Params) string {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	h := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, hashLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(h))
}

// checkPassword reports whether password matches the PHC string encoded, comparing in constant time.
func checkPassword(password, encoded string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false
	}
	var p Argon2Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || p.Threads == 0 || p.Time == 0 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func sha256Sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}
