package recorder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"filippo.io/age"
)

// storedWriter counts and hashes the bytes that reach the file, so the manifest describes the file as stored
// (ciphertext when encrypted): it can be checked without the key.
type storedWriter struct {
	f *os.File
	h hash.Hash
	n int64
}

func (s *storedWriter) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	return n, err
}

// outFile is one output file: codec writers write to w, which encrypts with age when the recording has
// recipients, and the stored bytes are counted and hashed.
type outFile struct {
	name   string
	stored storedWriter
	w      io.Writer
	enc    io.WriteCloser // the age writer, nil for a plain file
}

// createFile creates name in root (never replacing a file) and starts age encryption to recipients, if any.
func createFile(root *os.Root, name string, recipients []age.Recipient) (*outFile, error) {
	f, err := root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600) // read back by rehash
	if err != nil {
		return nil, err
	}
	o := &outFile{name: name, stored: storedWriter{f: f, h: sha256.New()}}
	o.w = &o.stored
	if len(recipients) > 0 {
		if o.enc, err = age.Encrypt(&o.stored, recipients...); err != nil {
			f.Close()
			return nil, fmt.Errorf("recorder: age: %w", err)
		}
		o.w = o.enc
	}
	return o, nil
}

// Write implements io.Writer for the codec writers.
func (o *outFile) Write(p []byte) (int, error) { return o.w.Write(p) }

// encrypted reports whether the file is age-encrypted.
func (o *outFile) encrypted() bool { return o.enc != nil }

// sync makes what has reached the file durable. An age writer holds up to one 64 KiB chunk of plaintext until the
// chunk is full: that part is not on disk yet.
func (o *outFile) sync() error { return o.stored.f.Sync() }

// size and digest describe the bytes stored so far.
func (o *outFile) size() int64 { return o.stored.n }

func (o *outFile) digest() string { return hex.EncodeToString(o.stored.h.Sum(nil)) }

// close ends the age stream, lets fix rewrite a plain file's header (then hashed anew from the disk), and closes
// the file durably.
func (o *outFile) close(fix func(*os.File) error) error {
	var errs []error
	if o.enc != nil {
		errs = append(errs, o.enc.Close())
	} else if fix != nil {
		if err := fix(o.stored.f); err != nil {
			errs = append(errs, err)
		} else {
			errs = append(errs, o.rehash())
		}
	}
	errs = append(errs, o.stored.f.Sync(), o.stored.f.Close())
	return errors.Join(errs...)
}

func (o *outFile) rehash() error {
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(o.stored.f, 0, 1<<62))
	if err != nil {
		return err
	}
	o.stored.h, o.stored.n = h, n
	return nil
}
