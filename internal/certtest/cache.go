package certtest

import (
	"crypto/rsa"
	"sync"
)

var rsaMu sync.Mutex

func loadCached(bits int) (*rsa.PrivateKey, bool) {
	rsaMu.Lock()
	defer rsaMu.Unlock()
	k, ok := rsaCache[bits]
	return k, ok
}

func storeCached(bits int, k *rsa.PrivateKey) {
	rsaMu.Lock()
	defer rsaMu.Unlock()
	rsaCache[bits] = k
}
