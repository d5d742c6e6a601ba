package relay

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Reasons for dropping a media packet or data message: the label values of stoa_relay_dropped_total.
const (
	dropQueue = "queue" // the send queue was full (or the packet was overwritten while waiting)
	dropSize  = "size"  // larger than maxRTPPacket (or the path's MTU), or too large for a data message
	dropSend  = "send"  // the socket refused the packet
)

// metrics are the transport's Prometheus metrics. They exist without a registry too (unregistered), so that the
// code that counts needs no nil checks.
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector

	links, rtt                                             *prometheus.GaugeVec
	packetsSent, bytesSent, packetsReceived, bytesReceived *prometheus.CounterVec
	retransmitted, recovered, lost, dropped                *prometheus.CounterVec
	refused, rejected                                      *prometheus.CounterVec
}

// peerMetrics are one peer's children of the metrics, looked up once per connection.
type peerMetrics struct {
	links, rtt                                             prometheus.Gauge
	packetsSent, bytesSent, packetsReceived, bytesReceived prometheus.Counter
	retransmitted, recovered, lost                         prometheus.Counter
	dropped                                                *prometheus.CounterVec // curried with the peer
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	peer := []string{"peer"}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, peer)
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &metrics{reg: reg,
		links:           gauge("stoa_relay_links", "Open relay links, by peer edge."),
		rtt:             gauge("stoa_relay_rtt_seconds", "Last health check round trip to the peer edge."),
		packetsSent:     counter("stoa_relay_packets_sent_total", "Media packets sent on relay links (retransmissions included).", "peer"),
		bytesSent:       counter("stoa_relay_bytes_sent_total", "Bytes of media packets sent on relay links.", "peer"),
		packetsReceived: counter("stoa_relay_packets_received_total", "Media packets received on relay links (duplicates excluded).", "peer"),
		bytesReceived:   counter("stoa_relay_bytes_received_total", "Bytes of media packets received on relay links.", "peer"),
		retransmitted:   counter("stoa_relay_retransmitted_total", "Media packets sent again on the peer's request.", "peer"),
		recovered:       counter("stoa_relay_recovered_total", "Media packets received late thanks to a request.", "peer"),
		lost:            counter("stoa_relay_lost_total", "Media packets given up on.", "peer"),
		dropped:         counter("stoa_relay_dropped_total", "Media packets and data messages not sent, by reason (queue, size, send).", "peer", "reason"),
		refused:         counter("stoa_relay_refused_total", "Connections refused at the handshake, by reason.", "reason"),
		rejected: counter("stoa_relay_media_rejected_total",
			"Incoming media packets discarded before their link, by reason (malformed, unknown_id, address, auth, replay, queue).", "reason"),
	}
	m.collectors = []prometheus.Collector{m.links, m.rtt, m.packetsSent, m.bytesSent, m.packetsReceived,
		m.bytesReceived, m.retransmitted, m.recovered, m.lost, m.dropped, m.refused, m.rejected}
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, r := range m.collectors[:i] {
				reg.Unregister(r)
			}
			return nil, err
		}
	}
	return m, nil
}

// peer returns the metrics of peer "region/edge".
func (m *metrics) peer(key string) *peerMetrics {
	return &peerMetrics{
		links: m.links.WithLabelValues(key), rtt: m.rtt.WithLabelValues(key),
		packetsSent: m.packetsSent.WithLabelValues(key), bytesSent: m.bytesSent.WithLabelValues(key),
		packetsReceived: m.packetsReceived.WithLabelValues(key), bytesReceived: m.bytesReceived.WithLabelValues(key),
		retransmitted: m.retransmitted.WithLabelValues(key), recovered: m.recovered.WithLabelValues(key),
		lost:    m.lost.WithLabelValues(key),
		dropped: m.dropped.MustCurryWith(prometheus.Labels{"peer": key}),
	}
}

// forget drops the gauges of a peer with no connection left (its counters stay, as counters must).
func (m *metrics) forget(key string) {
	m.links.DeleteLabelValues(key)
	m.rtt.DeleteLabelValues(key)
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
