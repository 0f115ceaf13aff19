package syncproto_test

import (
	"bytes"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/ponte-project/ponte/syncproto"
)

func TestCompress_RoundTrip(t *testing.T) {
	for _, frame := range validFrames {
		z, err := syncproto.Compress([]byte("kept"), []byte(frame))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(z, []byte("kept")) {
			t.Fatalf("Compress did not append to dst: %q", z[:8])
		}
		got, err := syncproto.Decompress(z[len("kept"):])
		if err != nil {
			t.Fatalf("Decompress(Compress(%.60q)): %v", frame, err)
		}
		if string(got) != frame {
			t.Fatalf("round trip changed %.60q into %.60q", frame, got)
		}
	}
}

// A frame small on the wire that would grow past MaxFrameBytes is refused
// before the memory is taken, whether or not it declares its size.
func TestDecompress_RefusesBombsAndGarbage(t *testing.T) {
	huge := make([]byte, syncproto.MaxFrameBytes+1)
	declared, err := syncproto.Compress(nil, huge)
	if err != nil {
		t.Fatal(err)
	}
	var undeclared bytes.Buffer // a stream: no content size in the header
	w, err := zstd.NewWriter(&undeclared)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(huge)
	w.Close()
	half, err := syncproto.Compress(nil, huge[:syncproto.MaxFrameBytes/2+1])
	if err != nil {
		t.Fatal(err)
	}
	valid, err := syncproto.Compress(nil, []byte(validFrames[syncproto.TypePush]))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  syncproto.Code
	}{
		{"declared size over the limit", declared, syncproto.CodeTooLarge},
		{"undeclared size over the limit", undeclared.Bytes(), syncproto.CodeTooLarge},
		{"two frames over the limit together", append(append([]byte(nil), half...), half...), syncproto.CodeTooLarge},
		{"not zstd", []byte(validFrames[syncproto.TypePush]), syncproto.CodeBadMessage},
		{"empty", nil, syncproto.CodeBadMessage},
		{"truncated", valid[:len(valid)-3], syncproto.CodeBadMessage},
		{"an empty frame", (func() []byte { e, _ := zstd.NewWriter(nil, zstd.WithZeroFrames(true)); return e.EncodeAll(nil, nil) })(), syncproto.CodeBadMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.frame) > 1<<20 {
				t.Fatalf("the test frame is %d bytes: not a bomb", len(tc.frame))
			}
			out, err := syncproto.Decompress(tc.frame)
			if got := syncproto.ErrorCode(err); got != tc.want || out != nil {
				t.Fatalf("Decompress = %d bytes, %v (code %q); want code %q", len(out), err, got, tc.want)
			}
		})
	}
}

// Pack compresses only on a session that agreed zstd and only from
// CompressMin bytes up; Unpack takes back what Pack made, and refuses a
// binary frame without the agreement.
func TestPack_CompressesWhatIsAgreedAndBigEnough(t *testing.T) {
	small, big := []byte(validFrames[syncproto.TypePush]), bytes.Repeat([]byte("x"), syncproto.CompressMin)
	for _, tc := range []struct {
		frame    []byte
		zstd     bool
		compress bool
	}{{small, true, len(small) >= syncproto.CompressMin}, {big, true, true}, {big, false, false}, {small, false, false}} {
		data, compressed, err := syncproto.Pack(tc.frame, tc.zstd)
		if err != nil || compressed != tc.compress || (!compressed && !bytes.Equal(data, tc.frame)) {
			t.Fatalf("Pack(%d bytes, zstd %v) = %d bytes, compressed %v, %v; want compressed %v",
				len(tc.frame), tc.zstd, len(data), compressed, err, tc.compress)
		}
		back, err := syncproto.Unpack(data, compressed, tc.zstd)
		if err != nil || !bytes.Equal(back, tc.frame) {
			t.Fatalf("Unpack(Pack(%d bytes)) = %d bytes, %v", len(tc.frame), len(back), err)
		}
	}
	data, _, _ := syncproto.Pack(big, true)
	if _, err := syncproto.Unpack(data, true, false); syncproto.ErrorCode(err) != syncproto.CodeBadMessage {
		t.Fatalf("Unpack of a binary frame without the agreement = %v, want bad_message", err)
	}
}
