package relay

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"time"
)

// rxQueue bounds the media packets waiting for a connection's media goroutine; beyond it they are dropped.
const rxQueue = 256

// mediaKeys is what a connection needs for its media packets.
type mediaKeys struct {
	id   uint64 // this end's id of the connection (the peer's is in seal)
	seal *mediaSealer
	open *mediaOpener
}

// newMediaKeys derives a connection's media keys; id is this end's id of the connection, peerID the peer's.
func newMediaKeys(cs *tls.ConnectionState, dialler bool, id, peerID uint64) (mediaKeys, error) {
	material, err := mediaKeyMaterial(cs)
	if err != nil {
		return mediaKeys{}, err
	}
	s, o, err := newMediaCiphers(material, dialler, peerID)
	if err != nil {
		return mediaKeys{}, err
	}
	return mediaKeys{id: id, seal: s, open: o}, nil
}

// readMedia reads the packets that quic-go finds are not QUIC, and hands each media packet to the goroutine of
// the connection its id names if it came from that connection's address. Authentication is that goroutine's.
func (t *Transport) readMedia() {
	for {
		b := mediaBufs.Get().(*mediaBuf)
		n, from, err := t.qt.ReadNonQUICPacket(t.ctx, b.b[:])
		if err != nil {
			mediaBufs.Put(b)
			return // the transport is closing
		}
		b.n = n
		if reason := t.dispatchMedia(b, from); reason != "" {
			t.m.rejected.WithLabelValues(reason).Inc()
			mediaBufs.Put(b)
		}
	}
}

// dispatchMedia queues b for its connection, or says why not.
func (t *Transport) dispatchMedia(b *mediaBuf, from net.Addr) string {
	h, _, err := parseMediaPacket(b.b[:b.n])
	if err != nil {
		return rejectMalformed
	}
	c := (*t.media.Load())[h.connID]
	if c == nil {
		return rejectUnknown
	}
	if !sameAddr(from, c.qc.RemoteAddr()) {
		return rejectAddress
	}
	select {
	case c.rx <- b:
		return ""
	default:
		return rejectQueue
	}
}

// sameAddr reports whether a and b are the same UDP address (an IPv4 address equals its IPv4-mapped form).
func sameAddr(a, b net.Addr) bool {
	ua, ok1 := a.(*net.UDPAddr)
	ub, ok2 := b.(*net.UDPAddr)
	if !ok1 || !ok2 {
		return false
	}
	pa, pb := ua.AddrPort(), ub.AddrPort()
	return pa.Port() == pb.Port() && pa.Addr().Unmap() == pb.Addr().Unmap() && pa.Addr().Zone() == pb.Addr().Zone()
}

// readMedia authenticates the connection's media packets and hands each to its link.
func (c *conn) readMedia() {
	done := c.qc.Context().Done()
	for {
		select {
		case <-done:
			return
		case b := <-c.rx:
			c.receiveMedia(b.b[:b.n])
			mediaBufs.Put(b)
		}
	}
}

func (c *conn) receiveMedia(pkt []byte) {
	payload, reason := c.keys.open.open(pkt)
	if reason != "" {
		c.t.m.rejected.WithLabelValues(reason).Inc()
		return
	}
	link, track, seq, rtp, err := parseDatagram(payload)
	if err != nil {
		c.t.m.rejected.WithLabelValues(rejectMalformed).Inc() // authentic, so a bug at the peer
		return
	}
	if l := (*c.links.Load())[link]; l != nil {
		l.deliver(track, seq, rtp)
	}
}

// sendMedia seals queued media and writes it to the connection's current remote address, retransmissions first.
// It is the only writer of the queue's packets, so WriteRTP never waits for the socket.
func (c *conn) sendMedia() {
	buf := make([]byte, 0, maxMediaPacket)
	var nonce [mediaIVLen]byte
	done := c.qc.Context().Done()
	for {
		var j dgramJob
		select {
		case j = <-c.resend:
		default:
			select {
			case j = <-c.resend:
			case j = <-c.media:
			case <-done:
				return
			}
		}
		l := j.out.l
		if time.Since(j.queued) > maxQueueDelay {
			l.drop(dropQueue)
			continue
		}
		var n int
		buf, n = j.out.datagram(buf[:mediaHeaderLen], j.seq)
		if n == 0 {
			l.drop(dropQueue) // overwritten before its turn
			continue
		}
		pkt, err := c.keys.seal.seal(buf, &nonce)
		if err == nil {
			_, err = c.t.qt.WriteTo(pkt, c.qc.RemoteAddr())
		}
		switch {
		case err == nil:
			l.sent(n, j.resend)
		case errors.Is(err, net.ErrClosed):
			return // the transport is closing
		case errors.Is(err, syscall.EMSGSIZE):
			l.drop(dropSize)
		default:
			l.drop(dropSend)
		}
	}
}
