package edge

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/internal/edge/forward"
	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/internal/relay"
)

// publication is one published track: audio or video forwarded as RTP, or data forwarded as messages. Its
// publisher is a local session (owner) or a participant of another edge whose packets arrive over a relay link
// (via).
type publication struct {
	id     string
	kind   protocol.Kind
	uid    string
	owner  *session  // nil for a remote track
	via    *roomLink // nil for a local track
	closed atomic.Bool

	// audio and video: the forwarding track that every subscriber connection binds, and the uplink's quality
	// (local tracks only)
	local *forward.Track
	up    *rtpStats

	// data: the subscribers' data channels, copied on write so that forwarding takes no lock
	dataSubs atomic.Pointer[[]*dataSub]
	dataMu   sync.Mutex

	// outs are the links the track is relayed on, copied on write (under the room's lock) so that forwarding
	// takes no lock.
	outs atomic.Pointer[[]linkOut]
}

type dataSub struct {
	s  *session
	dc *webrtc.DataChannel
}

// linkOut is a publication's sender on one relay link.
type linkOut struct {
	l *roomLink
	t *relay.OutTrack
}

func (p *publication) info() protocol.Track {
	return protocol.Track{ID: p.id, UID: p.uid, Kind: p.kind}
}

// forwardRTP copies the publisher's packets to every subscriber and link until the track ends. Payloads are SFrame
// ciphertext and pass unchanged.
//
// One packet in sampleEvery is timed from its arrival (decrypted by the publisher leg's SRTP) to its hand-over
// to the last subscriber's socket (encrypted by each subscriber leg's SRTP): the latency the edge adds.
func (p *publication) forwardRTP(track *webrtc.TrackRemote, m *metrics) {
	const sampleEvery = 16
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for i := 0; ; i++ {
		n, _, err := track.Read(buf)
		if err != nil {
			return
		}
		if p.closed.Load() {
			continue // stopped (e.g. its privilege expired): drain until the publisher stops sending
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		p.up.update(pkt.SSRC, pkt.SequenceNumber, pkt.Timestamp, n, nanotime())
		if i%sampleEvery == 0 {
			t0 := time.Now()
			p.forward(&pkt, buf[:n])
			m.forwardLatency.Observe(time.Since(t0).Seconds())
		} else {
			p.forward(&pkt, buf[:n])
		}
		m.forwarded.Inc()
	}
}

// forward hands one packet, parsed and raw, to the local subscribers and the links.
func (p *publication) forward(pkt *rtp.Packet, raw []byte) {
	p.local.Forward(&pkt.Header, pkt.Payload)
	if outs := p.outs.Load(); outs != nil {
		for _, o := range *outs {
			o.t.WriteRTP(raw)
		}
	}
}

func (p *publication) addDataSub(d *dataSub) {
	p.dataMu.Lock()
	defer p.dataMu.Unlock()
	var subs []*dataSub
	if cur := p.dataSubs.Load(); cur != nil {
		subs = append(subs, *cur...)
	}
	subs = append(subs, d)
	p.dataSubs.Store(&subs)
}

func (p *publication) removeDataSub(s *session) {
	p.dataMu.Lock()
	defer p.dataMu.Unlock()
	cur := p.dataSubs.Load()
	if cur == nil {
		return
	}
	subs := make([]*dataSub, 0, len(*cur))
	for _, d := range *cur {
		if d.s != s {
			subs = append(subs, d)
		}
	}
	p.dataSubs.Store(&subs)
}

// forwardData sends one data message of the publisher to every subscriber and link.
func (p *publication) forwardData(msg []byte) {
	if p.closed.Load() || len(msg) > protocol.MaxDataMessage {
		return
	}
	if outs := p.outs.Load(); outs != nil {
		for _, o := range *outs {
			o.t.SendData(msg)
		}
	}
	subs := p.dataSubs.Load()
	if subs == nil || len(*subs) == 0 {
		return
	}
	frame := protocol.AppendDataFrame(make([]byte, 0, 1+len(p.id)+len(msg)), p.id, msg)
	for _, d := range *subs {
		d.dc.Send(frame) // a subscriber whose channel is not open yet misses the message, as a late joiner would
	}
}

// addOut relays p on l from now on; the room's lock is held.
func (p *publication) addOut(l *roomLink, t *relay.OutTrack) {
	var outs []linkOut
	if cur := p.outs.Load(); cur != nil {
		outs = append(outs, *cur...)
	}
	outs = append(outs, linkOut{l, t})
	p.outs.Store(&outs)
}

// removeOut stops relaying p on l (which has ended); the room's lock is held.
func (p *publication) removeOut(l *roomLink) {
	cur := p.outs.Load()
	if cur == nil {
		return
	}
	outs := make([]linkOut, 0, len(*cur))
	for _, o := range *cur {
		if o.l != l {
			outs = append(outs, o)
		}
	}
	p.outs.Store(&outs)
}

// unpublishOuts tells every link that p has ended; the room's lock is held.
func (p *publication) unpublishOuts() {
	if cur := p.outs.Swap(nil); cur != nil {
		for _, o := range *cur {
			o.t.Unpublish()
			delete(o.l.sent, p.id)
		}
	}
}
