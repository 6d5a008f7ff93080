package xmpp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
)

// keyring holds the current and previous dialback secrets.
type keyring struct {
	mu        sync.RWMutex
	cur, prev []byte // hex(SHA256(secret)), the HMAC key of XEP-0185
}

func newKeyring(secret []byte) *keyring {
	return &keyring{cur: hashSecret(secret)}
}

func hashSecret(secret []byte) []byte {
	h := sha256.Sum256(secret)
	return []byte(hex.EncodeToString(h[:]))
}

func (k *keyring) rotate(secret []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.prev, k.cur = k.cur, hashSecret(secret)
}

// dialbackKey is XEP-0185 §3: HMAC-SHA256 keyed with hex(SHA256(secret))
// over "receiving originating streamID", hex-encoded.
func dialbackKey(hkey []byte, receiving, originating, streamID string) string {
	m := hmac.New(sha256.New, hkey)
	m.Write([]byte(receiving + " " + originating + " " + streamID))
	return hex.EncodeToString(m.Sum(nil))
}

// key makes the key our originating side sends.
func (k *keyring) key(receiving, originating, streamID string) string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return dialbackKey(k.cur, receiving, originating, streamID)
}

// valid checks a key presented in db:verify against the current and the
// previous secret, in constant time.
func (k *keyring) valid(key, receiving, originating, streamID string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	key = strings.ToLower(strings.TrimSpace(key))
	ok := false
	for _, s := range [][]byte{k.cur, k.prev} {
		if s == nil {
			continue
		}
		want := dialbackKey(s, receiving, originating, streamID)
		if hmac.Equal([]byte(want), []byte(key)) {
			ok = true
		}
	}
	return ok
}

// dialbackDone reports a dialback outcome to Config.OnDialback; a result
// other than valid or invalid (a dialback error) counts as "error".
func (s *Server) dialbackDone(direction, result string) {
	if s.cfg.OnDialback == nil {
		return
	}
	if result != "valid" && result != "invalid" {
		result = "error"
	}
	s.cfg.OnDialback(direction, result)
}
