// Package ratelimit holds token buckets by key (a device, an address), for
// the sync endpoint and the sign-in page. A Limiter is safe for concurrent
// use.
package ratelimit

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// ClientKey is the key of the client a request came from: its address
// without the port, an IPv6 address standing for its /64, which one machine
// can roam within.
func ClientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return host
}

// Limiter is a set of token buckets, one per key (a device, an address):
// each holds up to burst tokens and refills at rate per second. Idle
// buckets are forgotten, so memory stays bounded by the active keys.
type Limiter struct {
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

// New returns buckets of burst tokens refilled at rate per second.
func New(rate, burst float64) *Limiter {
	return &Limiter{rate: rate, burst: burst, buckets: map[string]*bucket{}}
}

// Allow takes one token from key's bucket at now, and reports whether
// there was one.
func (l *Limiter) Allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(key, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Refund gives back a token taken from key's bucket: the attempt it paid
// for turned out to be a good one.
func (l *Limiter) Refund(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(key, now)
	b.tokens = min(l.burst, b.tokens+1)
}

// refill returns key's bucket brought up to now; l.mu is held.
func (l *Limiter) refill(key string, now time.Time) *bucket {
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
