package syncproto

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// CompressionZstd names the frame compression a peer offers in its hello
// and the server chooses in its welcome: after that welcome, either side
// may send a message as a binary frame holding the zstd compression of its
// JSON (PROTOCOL.md, "Compression").
const CompressionZstd = "zstd"

// CompressMin is the size from which a message is worth compressing;
// smaller ones go as text frames. Below it zstd saves a few dozen bytes at
// best, and every receiver of a live change would pay to decompress it.
const CompressMin = 1 << 10

// One encoder and one decoder for the whole process: EncodeAll and
// DecodeAll may run concurrently, each call on its own state, and a state
// per session would cost every idle connection its tables.
var (
	codecs = sync.OnceValues(func() (*codec, error) {
		// One encoder per core: a call waits while all are busy, at most
		// for a 4 MiB page's compression (~10 ms), which the server's
		// broadcast may queue behind. Four per core cost ~40 MB more
		// resident memory in the bench.
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithWindowSize(1<<20))
		if err != nil {
			return nil, err
		}
		dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(MaxFrameBytes), zstd.WithDecoderMaxWindow(MaxFrameBytes))
		if err != nil {
			return nil, err
		}
		return &codec{enc, dec}, nil
	})
)

type codec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

// Compress appends the zstd compression of frame, an encoded message, to
// dst and returns it.
func Compress(dst, frame []byte) ([]byte, error) {
	c, err := codecs()
	if err != nil {
		return dst, &Error{Code: CodeInternal, Message: "compress", Err: err}
	}
	return c.enc.EncodeAll(frame, dst), nil
}

// Decompress returns the message a binary frame holds. A frame that is not
// zstd fails with CodeBadMessage; one that would decompress to more than
// MaxFrameBytes fails with CodeTooLarge before that memory is taken.
func Decompress(frame []byte) ([]byte, error) {
	c, err := codecs()
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "decompress", Err: err}
	}
	out, err := c.dec.DecodeAll(frame, nil)
	switch {
	case errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded):
		return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("compressed frame over %d bytes", MaxFrameBytes), Err: err}
	case err != nil:
		return nil, &Error{Code: CodeBadMessage, Message: "compressed frame", Err: err}
	case len(out) == 0:
		return nil, Errorf(CodeBadMessage, "compressed frame holds nothing")
	}
	return out, nil
}

// Pack returns what to send for frame, an encoded message, on a session
// that agreed zstd or not: the frame itself, or from CompressMin bytes up
// on an agreeing session its compression, with compressed set (a binary
// websocket frame).
func Pack(frame []byte, zstd bool) (data []byte, compressed bool, err error) {
	if !zstd || len(frame) < CompressMin {
		return frame, false, nil
	}
	data, err = Compress(nil, frame)
	return data, err == nil, err
}

// Unpack returns the encoded message that data, a received websocket
// frame, holds: compressed is whether it came binary, zstd whether the
// session agreed that. A binary frame without the agreement fails with
// CodeBadMessage; see Decompress for the rest.
func Unpack(data []byte, compressed, zstd bool) ([]byte, error) {
	switch {
	case !compressed:
		return data, nil
	case !zstd:
		return nil, Errorf(CodeBadMessage, "a binary frame, but no compression was agreed")
	}
	return Decompress(data)
}
