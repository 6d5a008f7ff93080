package sip

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BoltStore is a Store in one bbolt file: pure Go, single file, ACID
// transactions fsynced on commit, so a dialog written before its 2xx is
// on disk when the 2xx leaves.
type BoltStore struct {
	db *bolt.DB
}

var bucketSubscriptions = []byte("subscriptions")

// boltRecord versions the stored JSON so a later layout can migrate it.
type boltRecord struct {
	Version int          `json:"v"`
	Sub     Subscription `json:"sub"`
}

// OpenBoltStore opens or creates the store file at path. Only one process
// may hold it; a second open waits up to 5 s, then fails.
func OpenBoltStore(path string) (*BoltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("sip: open subscription store %s: %w (is another xgw running on it?)", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketSubscriptions)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("sip: init subscription store %s: %w", path, err)
	}
	return &BoltStore{db: db}, nil
}

// Close releases the file.
func (s *BoltStore) Close() error { return s.db.Close() }

func boltKey(id DialogID) []byte {
	return []byte(id.CallID + "\x00" + id.LocalTag + "\x00" + id.RemoteTag)
}

// Put implements Store.
func (s *BoltStore) Put(_ context.Context, sub Subscription) error {
	v, err := json.Marshal(boltRecord{Version: 1, Sub: sub})
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSubscriptions).Put(boltKey(sub.ID), v)
	})
}

// Delete implements Store.
func (s *BoltStore) Delete(_ context.Context, id DialogID) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSubscriptions).Delete(boltKey(id))
	})
}

// All implements Store.
func (s *BoltStore) All(context.Context) ([]Subscription, error) {
	var out []Subscription
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSubscriptions).ForEach(func(k, v []byte) error {
			var r boltRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %q: %w", k, err)
			}
			if r.Version != 1 {
				return fmt.Errorf("record %q: found version %d, expected 1 (store written by a newer xgw?)", k, r.Version)
			}
			out = append(out, r.Sub)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("sip: read subscription store: %w", err)
	}
	return out, nil
}
