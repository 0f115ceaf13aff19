package server

import (
	"sync"
	"time"
)

// limiter is a set of token buckets, one per key (a device, an address):
// each holds up to burst tokens and refills at rate per second. Idle
// buckets are forgotten, so memory stays bounded by the active keys.
type limiter struct {
	rate  float64
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate, burst float64) *limiter {
	return &limiter{rate: rate, burst: burst, buckets: map[string]*bucket{}}
}

// allow takes one token from key's bucket at now, and reports whether
// there was one.
func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(key, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// tokensLeft returns the tokens in key's bucket at now, taking none.
func (l *limiter) tokensLeft(key string, now time.Time) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refill(key, now).tokens
}

// refill returns key's bucket brought up to now; l.mu is held.
func (l *limiter) refill(key string, now time.Time) *bucket {
	if now.Sub(l.swept) > time.Minute {
		full := time.Duration(l.burst / l.rate * float64(time.Second))
		for k, b := range l.buckets {
			if now.Sub(b.last) > full {
				delete(l.buckets, k) // refilled by now: as good as new
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	return b
}
