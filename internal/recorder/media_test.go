package recorder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// oggStream is what a test reads back from an Ogg file.
type oggStream struct {
	head     []byte   // the OpusHead packet
	packets  [][]byte // audio packets
	granules []int64  // granule position of each audio page
	eos      bool     // the last page is marked end of stream
}

// readOgg splits an Ogg Opus file into its packets, checking the page layout and every CRC. Pion's reader checks
// the CRCs again, independently.
func readOgg(b []byte) (*oggStream, error) {
	r, _, err := oggreader.NewWith(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("pion: %w", err)
	}
	for {
		if _, _, err := r.ParseNextPage(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("pion: %w", err)
		}
	}
	s := &oggStream{}
	var seq uint32
	for page := 0; len(b) > 0; page++ {
		if len(b) < 27 || string(b[:4]) != "OggS" {
			return nil, fmt.Errorf("page %d: no capture pattern", page)
		}
		n := int(b[26])
		if len(b) < 27+n {
			return nil, fmt.Errorf("page %d: cut segment table", page)
		}
		size := 0
		for _, l := range b[27 : 27+n] {
			size += int(l)
		}
		if len(b) < 27+n+size {
			return nil, fmt.Errorf("page %d: cut data", page)
		}
		pg := bytes.Clone(b[:27+n+size])
		want := binary.LittleEndian.Uint32(pg[22:])
		binary.LittleEndian.PutUint32(pg[22:], 0)
		if oggCRC(pg) != want {
			return nil, fmt.Errorf("page %d: bad CRC", page)
		}
		if got := binary.LittleEndian.Uint32(pg[18:]); got != seq {
			return nil, fmt.Errorf("page %d: sequence %d", page, got)
		}
		seq++
		data := pg[27+n:]
		var pkt []byte
		var packets [][]byte
		for _, l := range pg[27 : 27+n] {
			pkt = append(pkt, data[:l]...)
			data = data[l:]
			if l < 255 {
				packets = append(packets, pkt)
				pkt = nil
			}
		}
		switch page {
		case 0:
			if pg[5] != oggFlagBOS || len(packets) != 1 || !bytes.HasPrefix(packets[0], []byte("OpusHead")) {
				return nil, errors.New("page 0 is not a lone OpusHead with BOS")
			}
			s.head = packets[0]
		case 1:
			if len(packets) != 1 || !bytes.HasPrefix(packets[0], []byte("OpusTags")) {
				return nil, errors.New("page 1 is not a lone OpusTags")
			}
		default:
			s.packets = append(s.packets, packets...)
			s.granules = append(s.granules, int64(binary.LittleEndian.Uint64(pg[6:])))
			s.eos = pg[5]&oggFlagEOS != 0
		}
		b = b[len(pg):]
	}
	return s, nil
}

// readIVF returns the frames and timestamps of an IVF file, and its header's frame count, width and height.
func readIVF(b []byte) (frames [][]byte, pts []uint64, count uint32, w, h int, err error) {
	r, hdr, err := ivfreader.NewWith(bytes.NewReader(b))
	if err != nil {
		return nil, nil, 0, 0, 0, err
	}
	for {
		f, fh, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			return frames, pts, hdr.NumFrames, int(hdr.Width), int(hdr.Height), nil
		}
		if err != nil {
			return nil, nil, 0, 0, 0, err
		}
		frames = append(frames, f)
		pts = append(pts, fh.Timestamp*uint64(hdr.TimebaseNumerator)/uint64(hdr.TimebaseDenominator)) // pion scales it
	}
}

// testMedia returns the Opus packets and VP8 frames of the test files (testdata/README.md).
func testMedia(t testing.TB) (opus, vp8 [][]byte) {
	t.Helper()
	b, err := os.ReadFile("testdata/tone.ogg")
	if err != nil {
		t.Fatal(err)
	}
	s, err := readOgg(b)
	if err != nil {
		t.Fatalf("tone.ogg: %v", err)
	}
	b, err = os.ReadFile("testdata/bars.ivf")
	if err != nil {
		t.Fatal(err)
	}
	vp8, _, _, _, _, err = readIVF(b)
	if err != nil {
		t.Fatalf("bars.ivf: %v", err)
	}
	return s.packets, vp8
}

func TestOpusSamples(t *testing.T) {
	for _, tc := range []struct {
		pkt  []byte
		want int
	}{
		{[]byte{0xf8, 1}, 960},        // CELT FB 20 ms, one frame
		{[]byte{0xfc, 1}, 960},        // the same, stereo
		{[]byte{0xf9, 1, 1}, 1920},    // two frames
		{[]byte{0xfb, 0x03, 1}, 2880}, // code 3, three frames
		{[]byte{0x08, 1}, 960},        // SILK NB 20 ms
		{[]byte{0x18, 1}, 2880},       // SILK NB 60 ms
		{[]byte{0x60, 1}, 480},        // hybrid SWB 10 ms
		{[]byte{0x80, 1}, 120},        // CELT NB 2.5 ms
		{[]byte{0xfb}, 0},             // code 3 without its count
		{[]byte{0x1b, 0x3f}, 0},       // 63 × 60 ms: longer than 120 ms
		{nil, 0},                      // empty
		{[]byte{0xf8}, 960},           // TOC only: a concealed frame
		{opusConcealment([]byte{0x19, 9, 9}), 2880},
	} {
		if got := opusSamples(tc.pkt); got != tc.want {
			t.Errorf("opusSamples(% x) = %d, want %d", tc.pkt, got, tc.want)
		}
	}
}

// The Ogg writer's output reads back packet for packet, with CRCs that pion's reader accepts, granule positions
// that count samples, pages no larger than the limits, and an end-of-stream page.
func TestOggRoundTrip(t *testing.T) {
	opus, _ := testMedia(t)
	packets := append(opus, bytes.Repeat([]byte{0xf8}, 700), bytes.Repeat([]byte{0xf8}, 255), []byte{0xf8})
	var buf bytes.Buffer
	w, err := newOggWriter(&buf, 42, 1)
	if err != nil {
		t.Fatal(err)
	}
	var granule int64
	for _, p := range packets {
		granule += int64(opusSamples(p))
		if err := w.writePacket(p, granule); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	s, err := readOgg(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.packets) != len(packets) {
		t.Fatalf("%d packets, want %d", len(s.packets), len(packets))
	}
	for i := range packets {
		if !bytes.Equal(s.packets[i], packets[i]) {
			t.Fatalf("packet %d differs", i)
		}
	}
	if !s.eos || s.granules[len(s.granules)-1] != granule {
		t.Errorf("eos %v, last granule %d, want %d", s.eos, s.granules[len(s.granules)-1], granule)
	}
	if s.head[9] != 1 || binary.LittleEndian.Uint16(s.head[10:]) != opusPreSkip {
		t.Errorf("OpusHead % x", s.head)
	}
	if err := w.writePacket(make([]byte, 255*255), 0); !errors.Is(err, errPacketTooLarge) {
		t.Errorf("oversized packet: %v", err)
	}
}

func FuzzOggRoundTrip(f *testing.F) {
	f.Add([]byte{0xf8, 1, 2, 3}, uint8(3), uint16(300))
	f.Add([]byte{}, uint8(0), uint16(255))
	f.Fuzz(func(t *testing.T, seed []byte, count uint8, size uint16) {
		var buf bytes.Buffer
		w, err := newOggWriter(&buf, 7, 2)
		if err != nil {
			t.Fatal(err)
		}
		var packets [][]byte
		for i := range int(count) {
			p := bytes.Repeat(append([]byte{byte(i)}, seed...), int(size)%600/(len(seed)+1)+1)
			if err := w.writePacket(p, int64(i)); err != nil {
				t.Fatal(err)
			}
			packets = append(packets, p)
		}
		w.close()
		s, err := readOgg(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if len(s.packets) != len(packets) {
			t.Fatalf("%d packets back, want %d", len(s.packets), len(packets))
		}
		for i := range packets {
			if !bytes.Equal(s.packets[i], packets[i]) {
				t.Fatalf("packet %d differs", i)
			}
		}
	})
}

func TestVP8Keyframe(t *testing.T) {
	_, vp8 := testMedia(t)
	w, h, ok := vp8Keyframe(vp8[0])
	if !ok || w != 160 || h != 120 {
		t.Errorf("first frame: %dx%d key %v", w, h, ok)
	}
	if _, _, ok := vp8Keyframe(vp8[1]); ok {
		t.Error("the second frame is a delta frame")
	}
	if _, _, ok := vp8Keyframe(vp8[0][:9]); ok {
		t.Error("a cut key frame header")
	}
}

// FuzzFrameParsers feeds network frames to the codec parsers: no panic, and a duration only for a valid TOC.
func FuzzFrameParsers(f *testing.F) {
	f.Add([]byte{0xfb, 0x03, 1})
	f.Add([]byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0xa0, 0x00, 0x78, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		if n := opusSamples(b); n < 0 || n > 5760 || n%120 != 0 {
			t.Fatalf("opusSamples = %d", n)
		}
		if w, h, ok := vp8Keyframe(b); ok && (w > 0x3fff || h > 0x3fff) {
			t.Fatalf("%dx%d", w, h)
		}
	})
}
