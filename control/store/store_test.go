package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func openTest(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestOpenMigratesOnceAndSetsPragmasOnEveryConnection(t *testing.T) {
	ctx := context.Background()
	s, path := openTest(t)
	if v, err := s.SchemaVersion(ctx); err != nil || v != len(migrations) {
		t.Fatalf("version %d %v, want %d", v, err, len(migrations))
	}
	s.Close()
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	var n int
	if err := s2.db.QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil || n != len(migrations) {
		t.Fatalf("migrations recorded %d (%v)", n, err)
	}
	// Hold several connections at once: each must have the pragmas.
	var conns []interface{ Close() error }
	for i := 0; i < 4; i++ {
		c, err := s2.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var fk int
		var mode string
		var busy int
		c.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk)
		c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
		c.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy)
		if fk != 1 || mode != "wal" || busy == 0 {
			t.Fatalf("conn %d: foreign_keys=%d journal_mode=%s busy_timeout=%d", i, fk, mode, busy)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	if err := s2.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFirstUserIsCreatedOnce(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.CreateFirstUser(ctx, User{Username: "admin" + string(rune('a'+i)), PasswordHash: "x", IsAdmin: true, CreatedAt: time.Now()})
			if err == nil {
				wins.Add(1)
			} else if !errors.Is(err, ErrAlreadySetUp) {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d first users created", wins.Load())
	}
	if _, err := s.CreateUser(ctx, User{Username: "ADMINA", PasswordHash: "x", CreatedAt: time.Now()}); err != nil && !errors.Is(err, ErrConflict) {
		t.Fatal(err)
	}
}

func TestCascadeAndLiveState(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	now := time.Now()
	u, err := s.CreateUser(ctx, User{Username: "u", PasswordHash: "x", CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("k"))
	st, err := s.CreateStream(ctx, Stream{UserID: u.ID, Title: "t", KeyHash: h[:], KeyPrefix: "live_", PlaybackID: "pub_1", CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	got, changed, err := s.SetLive(ctx, "pub_1", true, now)
	if err != nil || !changed || got.IsLive != Live || got.LastLiveAt.UnixMilli() != now.UnixMilli() {
		t.Fatalf("set live: %+v %v %v", got, changed, err)
	}
	if _, changed, _ := s.SetLive(ctx, "pub_1", true, now); changed {
		t.Fatal("live twice reported a change")
	}
	if _, _, err := s.SetLive(ctx, "pub_nope", true, now); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown playback id: %v", err)
	}
	if n, err := s.ResetLive(ctx); err != nil || n != 1 {
		t.Fatalf("reset %d %v", n, err)
	}
	th := sha256.Sum256([]byte("t"))
	if _, err := s.CreateRTMPToken(ctx, RTMPToken{StreamID: st.ID, Hash: th[:], CreatedAt: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StreamByID(ctx, st.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stream survived its user: %v", err)
	}
	if _, err := s.RTMPTokenByHash(ctx, th[:]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("token survived its stream: %v", err)
	}
}

func TestClaimRTMPTokenConcurrently(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	now := time.Now()
	u, _ := s.CreateUser(ctx, User{Username: "u", PasswordHash: "x", CreatedAt: now})
	h := sha256.Sum256([]byte("k"))
	st, _ := s.CreateStream(ctx, Stream{UserID: u.ID, Title: "t", KeyHash: h[:], KeyPrefix: "live_", PlaybackID: "pub_1", CreatedAt: now})
	th := sha256.Sum256([]byte("t"))
	s.CreateRTMPToken(ctx, RTMPToken{StreamID: st.ID, Hash: th[:], CreatedAt: now, ExpiresAt: now.Add(time.Minute)})
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.ClaimRTMPToken(ctx, th[:], now, 30*time.Second)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent claims won", wins.Load())
	}
	if err := s.ReleaseRTMPToken(ctx, th[:], now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.DeleteStaleRTMPTokens(ctx, now.Add(2*time.Second), 30*time.Second); n != 0 {
		t.Fatalf("deleted a token still in its grace")
	}
	if n, _ := s.DeleteStaleRTMPTokens(ctx, now.Add(40*time.Second), 30*time.Second); n != 1 {
		t.Fatalf("stale token not deleted")
	}
}

// TestPlaybackEpochMigratesAndBumps upgrades a version-1 database that already has a
// stream (its playback_epoch becomes 0) and bumps the epoch.
func TestPlaybackEpochMigratesAndBumps(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	old := migrations
	migrations = old[:1]
	s, err := Open(ctx, path)
	migrations = old
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO users (username, password_hash, created_at) VALUES ('u', 'x', 0);
		INSERT INTO streams (user_id, title, key_hash, key_prefix, playback_id, created_at) VALUES (1, 't', x'00', 'live_', 'pub_1', 0);`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer s.Close()
	st, err := s.StreamByPlaybackID(ctx, "pub_1")
	if err != nil || st.PlaybackEpoch != 0 {
		t.Fatalf("migrated stream %+v %v", st, err)
	}
	for want := int64(1); want <= 2; want++ {
		if e, err := s.BumpPlaybackEpoch(ctx, st.ID); err != nil || e != want {
			t.Fatalf("bump: %d %v, want %d", e, err, want)
		}
	}
	if st, _ := s.StreamByID(ctx, st.ID); st.PlaybackEpoch != 2 {
		t.Fatalf("epoch %d after two bumps", st.PlaybackEpoch)
	}
	if _, err := s.BumpPlaybackEpoch(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bump unknown: %v", err)
	}
}

// TestRelays covers relay CRUD, the per-stream limit under concurrent creation, the
// cascade from streams and a create for a stream that does not exist.
func TestRelays(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	now := time.Now()
	u, _ := s.CreateUser(ctx, User{Username: "u", PasswordHash: "x", CreatedAt: now})
	h := sha256.Sum256([]byte("k"))
	st, err := s.CreateStream(ctx, Stream{UserID: u.ID, Title: "t", KeyHash: h[:], KeyPrefix: "live_", PlaybackID: "pub_1", CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.CreateRelay(ctx, Relay{StreamID: st.ID, Platform: "twitch", Name: "tw", RTMPURL: "rtmp://live.twitch.tv/app",
		StreamKey: []byte{1, 2, 3}, Enabled: true, TLSVerify: true, CreatedAt: now, UpdatedAt: now}, 3)
	if err != nil || r.ID == 0 {
		t.Fatalf("create: %+v %v", r, err)
	}
	got, err := s.RelayByID(ctx, r.ID)
	if err != nil || got.Name != "tw" || got.Platform != "twitch" || !got.Enabled || !got.TLSVerify ||
		string(got.StreamKey) != "\x01\x02\x03" || got.CreatedAt.UnixMilli() != now.UnixMilli() {
		t.Fatalf("by id: %+v %v", got, err)
	}
	got.Name, got.Enabled, got.TLSVerify, got.StreamKey = "renamed", false, false, []byte{9}
	got.UpdatedAt = now.Add(time.Minute)
	if err := s.UpdateRelay(ctx, got); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.RelayByID(ctx, r.ID); again.Name != "renamed" || again.Enabled || again.TLSVerify ||
		string(again.StreamKey) != "\x09" || again.UpdatedAt.UnixMilli() != got.UpdatedAt.UnixMilli() {
		t.Fatalf("updated: %+v", again)
	}
	wrong := got
	wrong.StreamID = st.ID + 1
	if err := s.UpdateRelay(ctx, wrong); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update through another stream: %v", err)
	}

	// Concurrent creations stop at the limit.
	var wg sync.WaitGroup
	var made, limited atomic.Int32
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.CreateRelay(ctx, Relay{StreamID: st.ID, Platform: "custom", Name: "c", RTMPURL: "rtmp://h/app",
				StreamKey: []byte{1}, CreatedAt: now, UpdatedAt: now}, 3)
			switch {
			case err == nil:
				made.Add(1)
			case errors.Is(err, ErrLimit):
				limited.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if made.Load() != 2 || limited.Load() != 6 {
		t.Fatalf("made %d, limited %d", made.Load(), limited.Load())
	}
	if n, err := s.CountRelays(ctx, st.ID); err != nil || n != 3 {
		t.Fatalf("count %d %v", n, err)
	}
	list, err := s.ListRelaysByStream(ctx, st.ID)
	if err != nil || len(list) != 3 || list[0].ID != r.ID || list[1].ID > list[2].ID {
		t.Fatalf("list %+v %v", list, err)
	}
	if _, err := s.CreateRelay(ctx, Relay{StreamID: 999, Platform: "custom", Name: "c", RTMPURL: "rtmp://h/app",
		StreamKey: []byte{1}, CreatedAt: now, UpdatedAt: now}, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("relay of an unknown stream: %v", err)
	}

	if err := s.DeleteRelay(ctx, st.ID+1, r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete through another stream: %v", err)
	}
	if err := s.DeleteRelay(ctx, st.ID, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RelayByID(ctx, r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted relay: %v", err)
	}
	if err := s.DeleteStream(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.CountRelays(ctx, st.ID); n != 0 {
		t.Fatalf("%d relays survived their stream", n)
	}
}

// TestRelaysMigrateFromV2 upgrades a version-2 database with a stream and adds a relay
// to it, with the column defaults.
func TestRelaysMigrateFromV2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v2.db")
	old := migrations
	migrations = old[:2]
	s, err := Open(ctx, path)
	migrations = old
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO users (username, password_hash, created_at) VALUES ('u', 'x', 0);
		INSERT INTO streams (user_id, title, key_hash, key_prefix, playback_id, created_at) VALUES (1, 't', x'00', 'live_', 'pub_1', 0);`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer s.Close()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO relays (stream_id, platform, name, rtmp_url, stream_key, created_at, updated_at)
		VALUES (1, 'custom', 'c', 'rtmp://h/app', x'01', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListRelaysByStream(ctx, 1)
	if err != nil || len(list) != 1 || !list[0].Enabled || !list[0].TLSVerify {
		t.Fatalf("defaults: %+v %v", list, err)
	}
}

// TestVODStorage covers the upsert, the host-key rules (kept while host and port stay,
// cleared when they change, set explicitly, pinned only once and only for the host it was
// learnt from), deletion and the cascade from users.
func TestVODStorage(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	now := time.Now()
	u, _ := s.CreateUser(ctx, User{Username: "u", PasswordHash: "x", CreatedAt: now})
	if _, err := s.VODStorage(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("before: %v", err)
	}
	v := VODStorage{UserID: u.ID, Host: "h", Port: 22, Username: "vod", AuthMethod: AuthPassword, Password: []byte{1, 2},
		RemotePath: "/vods", HostKey: "ignored", RecordingEnabled: true, CreatedAt: now, UpdatedAt: now}
	got, err := s.PutVODStorage(ctx, v, false)
	if err != nil || got.Host != "h" || got.HostKey != "" || string(got.Password) != "\x01\x02" || got.PrivateKey != nil ||
		!got.RecordingEnabled || got.CreatedAt.UnixMilli() != now.UnixMilli() {
		t.Fatalf("put: %+v %v", got, err)
	}
	if ok, err := s.PinVODHostKey(ctx, u.ID, "other", 22, "k0"); ok || err != nil {
		t.Fatalf("pinned for another host: %v %v", ok, err)
	}
	if ok, err := s.PinVODHostKey(ctx, u.ID, "h", 22, "k1"); !ok || err != nil {
		t.Fatalf("pin: %v %v", ok, err)
	}
	if ok, _ := s.PinVODHostKey(ctx, u.ID, "h", 22, "k2"); ok {
		t.Fatal("pinned over a pinned key")
	}
	// Same host and port: the pin stays; created_at stays.
	v.RemotePath, v.RecordingEnabled, v.CreatedAt, v.UpdatedAt = "/other", false, now.Add(time.Hour), now.Add(time.Hour)
	if got, err = s.PutVODStorage(ctx, v, false); err != nil || got.HostKey != "k1" || got.RemotePath != "/other" ||
		got.RecordingEnabled || got.CreatedAt.UnixMilli() != now.UnixMilli() || got.UpdatedAt.UnixMilli() != v.UpdatedAt.UnixMilli() {
		t.Fatalf("update: %+v %v", got, err)
	}
	// Another port: cleared.
	v.Port = 2222
	if got, _ = s.PutVODStorage(ctx, v, false); got.HostKey != "" {
		t.Fatalf("pin kept across a port change: %+v", got)
	}
	// Explicit.
	v.HostKey = "k3"
	if got, _ = s.PutVODStorage(ctx, v, true); got.HostKey != "k3" {
		t.Fatalf("explicit pin: %+v", got)
	}
	if _, err := s.PutVODStorage(ctx, VODStorage{UserID: 999, Host: "h", Port: 22, Username: "u", AuthMethod: AuthKey, CreatedAt: now, UpdatedAt: now}, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	if err := s.DeleteVODStorage(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVODStorage(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	s.PutVODStorage(ctx, v, false)
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VODStorage(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("storage survived its user: %v", err)
	}
}

// TestRecordMigratesOn upgrades a version-3 database that has a stream: it is recorded
// (record 1), and the column follows create and update.
func TestRecordMigratesOn(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v3.db")
	old := migrations
	migrations = old[:3]
	s, err := Open(ctx, path)
	migrations = old
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO users (username, password_hash, created_at) VALUES ('u', 'x', 0);
		INSERT INTO streams (user_id, title, key_hash, key_prefix, playback_id, created_at) VALUES (1, 't', x'00', 'live_', 'pub_1', 0);`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(ctx, path); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer s.Close()
	st, err := s.StreamByPlaybackID(ctx, "pub_1")
	if err != nil || !st.Record {
		t.Fatalf("migrated stream %+v %v", st, err)
	}
	st.Record = false
	if err := s.UpdateStream(ctx, st); err != nil {
		t.Fatal(err)
	}
	if st, _ = s.StreamByID(ctx, st.ID); st.Record {
		t.Fatal("record not updated")
	}
	h := sha256.Sum256([]byte("k2"))
	st2, err := s.CreateStream(ctx, Stream{UserID: 1, Title: "t2", KeyHash: h[:], KeyPrefix: "live_", PlaybackID: "pub_2", Record: true, CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if st2, _ = s.StreamByID(ctx, st2.ID); !st2.Record {
		t.Fatal("record not stored on create")
	}
}
