package chat

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// memStore is an in-memory Store for the package's tests (control tests the real one).
type memStore struct {
	mu        sync.Mutex
	users     map[int64]User
	channels  map[int64]Channel
	messages  map[int64]Message
	reactions []Reaction
	pins      map[int64]Pin
	reads     map[[2]int64]int64 // user, channel → last read id
	nextID    int64
}

var _ Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{users: map[int64]User{}, channels: map[int64]Channel{}, messages: map[int64]Message{},
		pins: map[int64]Pin{}, reads: map[[2]int64]int64{}}
}

func (s *memStore) addUser(u User) {
	s.mu.Lock()
	s.users[u.ID] = u
	s.mu.Unlock()
}

func (s *memStore) id() int64 { s.nextID++; return s.nextID }

func (s *memStore) CreateChannel(_ context.Context, ch Channel) (Channel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.channels {
		if c.Name == ch.Name || (ch.StreamID != 0 && c.StreamID == ch.StreamID) {
			return Channel{}, ErrConflict
		}
	}
	ch.ID = s.id()
	s.channels[ch.ID] = ch
	return ch, nil
}

func (s *memStore) UpdateChannel(_ context.Context, ch Channel) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.channels[ch.ID]; !ok {
		return ErrNotFound
	}
	for _, c := range s.channels {
		if c.Name == ch.Name && c.ID != ch.ID {
			return ErrConflict
		}
	}
	s.channels[ch.ID] = ch
	return nil
}

func (s *memStore) DeleteChannel(_ context.Context, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.channels[id]; !ok {
		return ErrNotFound
	}
	delete(s.channels, id)
	for mid, m := range s.messages {
		if m.ChannelID == id {
			s.deleteMessageLocked(mid)
		}
	}
	return nil
}

func (s *memStore) Channel(_ context.Context, id int64) (Channel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.channels[id]
	if !ok {
		return Channel{}, ErrNotFound
	}
	return ch, nil
}

func (s *memStore) find(f func(Channel) bool) (Channel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.channels {
		if f(ch) {
			return ch, nil
		}
	}
	return Channel{}, ErrNotFound
}

func (s *memStore) ChannelByName(_ context.Context, name string) (Channel, error) {
	return s.find(func(ch Channel) bool { return ch.Name == name })
}

func (s *memStore) ChannelByStream(_ context.Context, id int64) (Channel, error) {
	return s.find(func(ch Channel) bool { return ch.StreamID == id })
}

func (s *memStore) Channels(context.Context) ([]Channel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Channel
	for _, ch := range s.channels {
		out = append(out, ch)
	}
	slices.SortFunc(out, func(a, b Channel) int {
		if a.IsDefault != b.IsDefault {
			if a.IsDefault {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out, nil
}

func (s *memStore) withAuthor(m Message) Message {
	u := s.users[m.UserID]
	m.Username, m.AuthorRole = u.Username, u.Role
	return m
}

func (s *memStore) CreateMessage(_ context.Context, m Message) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.channels[m.ChannelID]; !ok {
		return Message{}, ErrNotFound
	}
	m.ID = s.id()
	s.messages[m.ID] = m
	return s.withAuthor(m), nil
}

func (s *memStore) Message(_ context.Context, id int64) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[id]
	if !ok {
		return Message{}, ErrNotFound
	}
	return s.withAuthor(m), nil
}

func (s *memStore) EditMessage(_ context.Context, id int64, text string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[id]
	if !ok {
		return ErrNotFound
	}
	m.Text, m.EditedAt = text, at
	s.messages[id] = m
	return nil
}

func (s *memStore) deleteMessageLocked(id int64) {
	delete(s.messages, id)
	delete(s.pins, id)
	s.reactions = slices.DeleteFunc(s.reactions, func(r Reaction) bool { return r.MessageID == id })
}

func (s *memStore) DeleteMessage(_ context.Context, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.messages[id]; !ok {
		return ErrNotFound
	}
	s.deleteMessageLocked(id)
	return nil
}

func (s *memStore) Messages(_ context.Context, channelID, beforeID int64, limit int) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages {
		if m.ChannelID == channelID && (beforeID == 0 || m.ID < beforeID) {
			out = append(out, s.withAuthor(m))
		}
	}
	slices.SortFunc(out, func(a, b Message) int { return cmp.Compare(b.ID, a.ID) })
	return out[:min(len(out), limit)], nil
}

func (s *memStore) PurgeMessages(_ context.Context, before time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for id, m := range s.messages {
		if m.CreatedAt.Before(before) {
			s.deleteMessageLocked(id)
			n++
		}
	}
	return n, nil
}

func (s *memStore) ToggleReaction(_ context.Context, r Reaction, maxPerUser int) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.messages[r.MessageID]; !ok {
		return false, ErrNotFound
	}
	mine := 0
	for i, x := range s.reactions {
		if x.MessageID == r.MessageID && x.UserID == r.UserID {
			if x.Emoji == r.Emoji {
				s.reactions = slices.Delete(s.reactions, i, i+1)
				return false, nil
			}
			mine++
		}
	}
	if mine >= maxPerUser {
		return false, ErrLimit
	}
	s.reactions = append(s.reactions, r)
	return true, nil
}

func (s *memStore) Reactions(_ context.Context, ids []int64) ([]Reaction, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Reaction
	for _, r := range s.reactions {
		if slices.Contains(ids, r.MessageID) {
			r.Username = s.users[r.UserID].Username
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *memStore) Pin(_ context.Context, p Pin, maxPerChannel int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.messages[p.MessageID]; !ok {
		return ErrNotFound
	}
	if _, ok := s.pins[p.MessageID]; ok {
		return ErrConflict
	}
	n := 0
	for _, x := range s.pins {
		if x.ChannelID == p.ChannelID {
			n++
		}
	}
	if n >= maxPerChannel {
		return ErrLimit
	}
	s.pins[p.MessageID] = p
	return nil
}

func (s *memStore) Unpin(_ context.Context, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pins[id]; !ok {
		return ErrNotFound
	}
	delete(s.pins, id)
	return nil
}

func (s *memStore) Pins(_ context.Context, channelID int64) ([]Pin, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Pin
	for _, p := range s.pins {
		if p.ChannelID == channelID {
			p.PinnedByName = s.users[p.PinnedBy].Username
			p.Message = s.withAuthor(s.messages[p.MessageID])
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Pin) int {
		return cmp.Or(a.PinnedAt.Compare(b.PinnedAt), cmp.Compare(a.MessageID, b.MessageID))
	})
	return out, nil
}

func (s *memStore) MarkRead(_ context.Context, userID, channelID, messageID int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]int64{userID, channelID}
	s.reads[k] = max(s.reads[k], messageID)
	return nil
}

func (s *memStore) UnreadCounts(_ context.Context, userID int64) (map[int64]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int64]int{}
	for _, m := range s.messages {
		if m.UserID != userID && m.ID > s.reads[[2]int64{userID, m.ChannelID}] {
			out[m.ChannelID]++
		}
	}
	return out, nil
}
