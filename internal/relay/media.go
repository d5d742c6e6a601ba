package relay

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Media packets travel beside QUIC, on the same UDP socket, so that QUIC's congestion control (which takes random
// loss for congestion) does not hold them back. A media packet:
//
//	version u8 (0x01) | conn_id u64 | counter u64 | sealed payload | tag (16 bytes)
//
// The version byte has QUIC's fixed bit (0x40) and long-header bit (0x80) clear: quic-go's Transport hands such
// packets to ReadNonQUICPacket rather than to a QUIC connection. conn_id is the id the receiver chose for the
// connection and sent in its hello (so it finds the connection's keys); counter is the sender's packet number in
// that direction, from 0. The payload (a media datagram, wire.go) is sealed with AES-128-GCM, the 17-byte header
// as additional data, and the nonce the direction's IV XOR the counter (as TLS 1.3 does, RFC 8446 §5.3).
//
// Keys: the connection's TLS exporter with label mediaExporterLabel gives 56 bytes, the key (16) and IV (12) of
// the dialler's direction, then those of the other; each direction has its own key and counter, so no nonce is
// used twice under a key. The receiver accepts a packet only from the connection's current remote address, only
// once it authenticates, and only once (a window of the last replayBits counters).

const (
	mediaExporterLabel = "EXPORTER-stoa-relay-media-v1"
	mediaVersion       = 0x01
	mediaHeaderLen     = 1 + 8 + 8
	mediaTagLen        = 16
	mediaKeyLen        = 16
	mediaIVLen         = 12
	// maxDatagramHeader is the longest media datagram header: link and track uvarints and the sequence number.
	maxDatagramHeader = 10 + 5 + 2
	// maxMediaPacket is the largest media packet: 1450 bytes, within quic-go's largest packet on a path of
	// 1500-byte MTU (1452 bytes over IPv6).
	maxMediaPacket = mediaHeaderLen + maxDatagramHeader + maxRTPPacket + mediaTagLen
	minMediaPacket = mediaHeaderLen + 1 + 1 + 2 + minRTP + mediaTagLen
	// maxCounter: a sender refuses to go past it (at a million packets a second, in 290 000 years).
	maxCounter = 1 << 63
	// replayBits is how far back (in packets) a receiver remembers which counters it accepted; older packets are
	// refused. It covers the reordering of a path, not retransmissions (which are new packets).
	replayBits = 2048
)

var _ [1452 - maxMediaPacket]struct{} // maxMediaPacket fits in one quic-go packet

// Reasons for discarding an incoming media packet: the label values of stoa_relay_media_rejected_total.
const (
	rejectMalformed = "malformed"  // not a media packet of this version, or of impossible size
	rejectUnknown   = "unknown_id" // no connection has that id
	rejectAddress   = "address"    // not from the remote address of the connection its id names
	rejectAuth      = "auth"       // does not authenticate under the connection's key
	rejectReplay    = "replay"     // a counter already accepted, or older than the window
	rejectQueue     = "queue"      // the connection's receive queue was full
)

// errMediaPacket is wrapped by every media packet decoding error.
var errMediaPacket = errors.New("relay: malformed media packet")

// mediaHeader is the clear part of a media packet.
type mediaHeader struct {
	connID, counter uint64
}

func appendMediaHeader(dst []byte, h mediaHeader) []byte {
	dst = append(dst, mediaVersion)
	dst = binary.BigEndian.AppendUint64(dst, h.connID)
	return binary.BigEndian.AppendUint64(dst, h.counter)
}

// parseMediaPacket splits a media packet into its header and the sealed rest (payload and tag), which aliases b.
func parseMediaPacket(b []byte) (mediaHeader, []byte, error) {
	switch {
	case len(b) < minMediaPacket || len(b) > maxMediaPacket:
		return mediaHeader{}, nil, fmt.Errorf("%w: %d bytes", errMediaPacket, len(b))
	case b[0] != mediaVersion:
		return mediaHeader{}, nil, fmt.Errorf("%w: version %#x", errMediaPacket, b[0])
	}
	h := mediaHeader{connID: binary.BigEndian.Uint64(b[1:]), counter: binary.BigEndian.Uint64(b[9:])}
	return h, b[mediaHeaderLen:], nil
}

// mediaKeyMaterial exports the key material of a connection's media packets.
func mediaKeyMaterial(cs *tls.ConnectionState) ([]byte, error) {
	return cs.ExportKeyingMaterial(mediaExporterLabel, nil, 2*(mediaKeyLen+mediaIVLen))
}

// mediaSealer seals the media packets of one direction of a connection.
type mediaSealer struct {
	aead   cipher.AEAD
	iv     [mediaIVLen]byte
	connID uint64        // the receiver's id of the connection
	next   atomic.Uint64 // the next counter
}

// mediaOpener opens the media packets of one direction; one goroutine at a time uses it.
type mediaOpener struct {
	aead   cipher.AEAD
	iv     [mediaIVLen]byte
	nonce  [mediaIVLen]byte // scratch, kept here so that passing it to the AEAD does not allocate
	window replayWindow
}

// newMediaCiphers returns the sealer and opener of one end from the connection's key material; dialler says
// which end; peerID is the id the peer chose for the connection.
func newMediaCiphers(material []byte, dialler bool, peerID uint64) (*mediaSealer, *mediaOpener, error) {
	if len(material) != 2*(mediaKeyLen+mediaIVLen) {
		return nil, nil, fmt.Errorf("relay: media key material of %d bytes", len(material))
	}
	half := mediaKeyLen + mediaIVLen
	out, in := material[:half], material[half:]
	if !dialler {
		out, in = in, out
	}
	aeadOf := func(k []byte) (cipher.AEAD, error) {
		block, err := aes.NewCipher(k[:mediaKeyLen])
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(block)
	}
	sa, err := aeadOf(out)
	if err != nil {
		return nil, nil, err
	}
	oa, err := aeadOf(in)
	if err != nil {
		return nil, nil, err
	}
	s := &mediaSealer{aead: sa, connID: peerID}
	copy(s.iv[:], out[mediaKeyLen:])
	o := &mediaOpener{aead: oa}
	copy(o.iv[:], in[mediaKeyLen:])
	return s, o, nil
}

func makeNonce(nonce, iv *[mediaIVLen]byte, counter uint64) {
	*nonce = *iv
	for i := range 8 {
		nonce[mediaIVLen-1-i] ^= byte(counter >> (8 * i))
	}
}

// errCounterExhausted: a direction sent maxCounter packets (never, in practice).
var errCounterExhausted = errors.New("relay: media packet counter exhausted")

// seal turns pkt, mediaHeaderLen bytes of room followed by the payload, into a media packet, in place (pkt
// needs mediaTagLen bytes of spare capacity not to be copied); nonce is the caller's scratch space.
func (s *mediaSealer) seal(pkt []byte, nonce *[mediaIVLen]byte) ([]byte, error) {
	ctr := s.next.Add(1) - 1
	if ctr >= maxCounter {
		s.next.Store(maxCounter) // and stay there
		return nil, errCounterExhausted
	}
	appendMediaHeader(pkt[:0], mediaHeader{connID: s.connID, counter: ctr})
	makeNonce(nonce, &s.iv, ctr)
	hdr := pkt[:mediaHeaderLen]
	return s.aead.Seal(hdr, nonce[:], pkt[mediaHeaderLen:], hdr), nil
}

// open authenticates and decrypts a media packet in place and returns its payload, or the reason to reject it.
// Only an authentic packet moves the replay window.
func (o *mediaOpener) open(pkt []byte) ([]byte, string) {
	h, sealed, err := parseMediaPacket(pkt)
	if err != nil {
		return nil, rejectMalformed
	}
	if !o.window.fresh(h.counter) {
		return nil, rejectReplay
	}
	makeNonce(&o.nonce, &o.iv, h.counter)
	payload, err := o.aead.Open(sealed[:0], o.nonce[:], sealed, pkt[:mediaHeaderLen])
	if err != nil {
		return nil, rejectAuth
	}
	o.window.accept(h.counter)
	return payload, ""
}

// replayWindow remembers which of the last replayBits counters were accepted. The zero value is ready to use.
type replayWindow struct {
	next uint64 // one past the highest counter accepted
	bits [replayBits / 64]uint64
}

func (w *replayWindow) bit(ctr uint64) (*uint64, uint64) {
	return &w.bits[(ctr/64)%uint64(len(w.bits))], 1 << (ctr % 64)
}

// fresh reports whether ctr may be accepted: newer than the window, or in it and not accepted yet.
func (w *replayWindow) fresh(ctr uint64) bool {
	if ctr >= w.next {
		return true
	}
	if w.next-ctr > replayBits {
		return false
	}
	word, b := w.bit(ctr)
	return *word&b == 0
}

// accept notes ctr, which must be fresh.
func (w *replayWindow) accept(ctr uint64) {
	if ctr >= w.next {
		if ctr-w.next >= replayBits {
			w.bits = [replayBits / 64]uint64{}
		} else {
			for i := w.next; i < ctr; i++ {
				word, b := w.bit(i)
				*word &^= b
			}
		}
		w.next = ctr + 1
	}
	word, b := w.bit(ctr)
	*word |= b
}

// mediaBuf holds one media packet on its way from the socket to its connection's goroutine.
type mediaBuf struct {
	b [maxMediaPacket + 1]byte // one more, to tell a packet that is too large from one that fits
	n int
}

var mediaBufs = sync.Pool{New: func() any { return new(mediaBuf) }}
