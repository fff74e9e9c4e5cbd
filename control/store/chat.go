package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// ChatChannel is a chat channel.
type ChatChannel struct {
	ID          int64
	Name        string
	Description string
	IsDefault   bool
	// StreamID is the stream the channel belongs to (0: none); deleting the stream
	// deletes the channel.
	StreamID int64
	// OwnerID is the channel's owner (0: none, or the owner was deleted).
	OwnerID   int64
	Private   bool
	ReadOnly  bool
	CreatedAt time.Time
}

const chatChannelCols = "id, name, description, is_default, stream_id, owner_id, is_private, read_only, created_at"

func scanChatChannel(row interface{ Scan(...any) error }) (ChatChannel, error) {
	var c ChatChannel
	var stream, owner, created sql.NullInt64
	err := row.Scan(&c.ID, &c.Name, &c.Description, &c.IsDefault, &stream, &owner, &c.Private, &c.ReadOnly, &created)
	c.StreamID, c.OwnerID, c.CreatedAt = stream.Int64, owner.Int64, fromMS(created)
	return c, err
}

// nullID stores an optional id: 0 is NULL.
func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// CreateChatChannel inserts c (ID ignored) and returns it with its id. A taken name, or a
// second channel for a stream, gives ErrConflict; a stream that does not exist, ErrNotFound.
func (s *Store) CreateChatChannel(ctx context.Context, c ChatChannel) (ChatChannel, error) {
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO chat_channels (name, description, is_default, stream_id, owner_id, is_private, read_only, created_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Name, c.Description, b2i(c.IsDefault), nullID(c.StreamID), nullID(c.OwnerID), b2i(c.Private), b2i(c.ReadOnly),
		ms(c.CreatedAt))
	if err != nil {
		switch {
		case isUnique(err):
			return ChatChannel{}, ErrConflict
		case isForeignKey(err):
			return ChatChannel{}, ErrNotFound
		}
		return ChatChannel{}, fmt.Errorf("store: create chat channel: %w", err)
	}
	c.ID, err = res.LastInsertId()
	return c, err
}

// UpdateChatChannel stores c's name, description, visibility and mode (ErrConflict for a
// taken name).
func (s *Store) UpdateChatChannel(ctx context.Context, c ChatChannel) error {
	err := affected(s.db.ExecContext(ctx,
		"UPDATE chat_channels SET name = ?, description = ?, is_private = ?, read_only = ? WHERE id = ?",
		c.Name, c.Description, b2i(c.Private), b2i(c.ReadOnly), c.ID))
	if err != nil && isUnique(err) {
		return ErrConflict
	}
	return err
}

// DeleteChatChannel deletes channel id and, by cascade, its messages, reactions, pins and
// read positions.
func (s *Store) DeleteChatChannel(ctx context.Context, id int64) error {
	return affected(s.db.ExecContext(ctx, "DELETE FROM chat_channels WHERE id = ?", id))
}

// ChatChannelByID returns channel id, or ErrNotFound.
func (s *Store) ChatChannelByID(ctx context.Context, id int64) (ChatChannel, error) {
	c, err := scanChatChannel(s.db.QueryRowContext(ctx, "SELECT "+chatChannelCols+" FROM chat_channels WHERE id = ?", id))
	return c, notFound(err)
}

// ChatChannelByName returns the channel named name, or ErrNotFound.
func (s *Store) ChatChannelByName(ctx context.Context, name string) (ChatChannel, error) {
	c, err := scanChatChannel(s.db.QueryRowContext(ctx, "SELECT "+chatChannelCols+" FROM chat_channels WHERE name = ?", name))
	return c, notFound(err)
}

// ChatChannelByStream returns the channel of stream streamID, or ErrNotFound.
func (s *Store) ChatChannelByStream(ctx context.Context, streamID int64) (ChatChannel, error) {
	c, err := scanChatChannel(s.db.QueryRowContext(ctx, "SELECT "+chatChannelCols+" FROM chat_channels WHERE stream_id = ?", streamID))
	return c, notFound(err)
}

// ListChatChannels returns every channel, the default ones first, then by name.
func (s *Store) ListChatChannels(ctx context.Context) ([]ChatChannel, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+chatChannelCols+" FROM chat_channels ORDER BY is_default DESC, name")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []ChatChannel{}
	for rows.Next() {
		c, err := scanChatChannel(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ChatMessage is a chat message as stored: Body is sealed by the caller.
type ChatMessage struct {
	ID        int64
	ChannelID int64
	UserID    int64
	// Username and UserIsAdmin are the author's, filled in on reads.
	Username    string
	UserIsAdmin bool
	Body        []byte
	ReplyTo     int64
	Anonymous   bool
	CreatedAt   time.Time
	EditedAt    time.Time
}

const chatMessageCols = `m.id, m.channel_id, m.user_id, u.username, u.is_admin, m.body, m.reply_to, m.anonymous,
	m.created_at, m.edited_at`

const chatMessageFrom = " FROM chat_messages m JOIN users u ON u.id = m.user_id"

func scanChatMessage(row interface{ Scan(...any) error }) (ChatMessage, error) {
	var m ChatMessage
	var reply, created, edited sql.NullInt64
	err := row.Scan(&m.ID, &m.ChannelID, &m.UserID, &m.Username, &m.UserIsAdmin, &m.Body, &reply, &m.Anonymous,
		&created, &edited)
	m.ReplyTo, m.CreatedAt, m.EditedAt = reply.Int64, fromMS(created), fromMS(edited)
	return m, err
}

// CreateChatMessage inserts m (ID and Body ignored) with the body seal returns for its
// new id, in one transaction, so that the sealed body can be bound to the id (associated
// data) and no row ever holds anything else. An unknown channel or user is ErrNotFound.
func (s *Store) CreateChatMessage(ctx context.Context, m ChatMessage, seal func(id int64) []byte) (ChatMessage, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return ChatMessage{}, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx,
		`INSERT INTO chat_messages (channel_id, user_id, body, reply_to, anonymous, created_at) VALUES (?, ?, x'', ?, ?, ?)`,
		m.ChannelID, m.UserID, nullID(m.ReplyTo), b2i(m.Anonymous), ms(m.CreatedAt))
	if err != nil {
		if isForeignKey(err) {
			return ChatMessage{}, ErrNotFound
		}
		return ChatMessage{}, fmt.Errorf("store: create chat message: %w", err)
	}
	if m.ID, err = res.LastInsertId(); err != nil {
		return ChatMessage{}, err
	}
	m.Body = seal(m.ID)
	if _, err := tx.ExecContext(ctx, "UPDATE chat_messages SET body = ? WHERE id = ?", m.Body, m.ID); err != nil {
		return ChatMessage{}, fmt.Errorf("store: create chat message: %w", err)
	}
	if err := tx.QueryRowContext(ctx, "SELECT username, is_admin FROM users WHERE id = ?", m.UserID).
		Scan(&m.Username, &m.UserIsAdmin); err != nil {
		return ChatMessage{}, notFound(err)
	}
	return m, tx.Commit()
}

// ChatMessageByID returns message id, or ErrNotFound.
func (s *Store) ChatMessageByID(ctx context.Context, id int64) (ChatMessage, error) {
	m, err := scanChatMessage(s.db.QueryRowContext(ctx, "SELECT "+chatMessageCols+chatMessageFrom+" WHERE m.id = ?", id))
	return m, notFound(err)
}

// UpdateChatMessageBody replaces the sealed body of message id and sets its edit time.
func (s *Store) UpdateChatMessageBody(ctx context.Context, id int64, body []byte, editedAt time.Time) error {
	return affected(s.db.ExecContext(ctx, "UPDATE chat_messages SET body = ?, edited_at = ? WHERE id = ?",
		body, ms(editedAt), id))
}

// DeleteChatMessage deletes message id with its reactions and pin.
func (s *Store) DeleteChatMessage(ctx context.Context, id int64) error {
	return affected(s.db.ExecContext(ctx, "DELETE FROM chat_messages WHERE id = ?", id))
}

// ListChatMessages returns up to limit messages of a channel with an id below beforeID
// (0: no bound), newest first.
func (s *Store) ListChatMessages(ctx context.Context, channelID, beforeID int64, limit int) ([]ChatMessage, error) {
	q := "SELECT " + chatMessageCols + chatMessageFrom + " WHERE m.channel_id = ?"
	args := []any{channelID}
	if beforeID > 0 {
		q += " AND m.id < ?"
		args = append(args, beforeID)
	}
	q += " ORDER BY m.id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []ChatMessage{}
	for rows.Next() {
		m, err := scanChatMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// DeleteChatMessagesBefore deletes the messages created before t and returns how many.
func (s *Store) DeleteChatMessagesBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, "DELETE FROM chat_messages WHERE created_at < ?", t.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("store: purge chat messages: %w", err)
	}
	return res.RowsAffected()
}

// ChatReaction is one user's emoji on a message.
type ChatReaction struct {
	MessageID int64
	UserID    int64
	Username  string // filled in on reads
	Emoji     string
	CreatedAt time.Time
}

// ToggleChatReaction removes r if it exists, else inserts it unless the user already has
// maxPerUser reactions on the message (ErrLimit); added reports which. An unknown
// message is ErrNotFound.
func (s *Store) ToggleChatReaction(ctx context.Context, r ChatReaction, maxPerUser int) (added bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "DELETE FROM chat_reactions WHERE message_id = ? AND user_id = ? AND emoji = ?",
		r.MessageID, r.UserID, r.Emoji)
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return false, tx.Commit()
	}
	var mine int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM chat_reactions WHERE message_id = ? AND user_id = ?",
		r.MessageID, r.UserID).Scan(&mine); err != nil {
		return false, err
	}
	if mine >= maxPerUser {
		return false, ErrLimit
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO chat_reactions (message_id, user_id, emoji, created_at) VALUES (?, ?, ?, ?)",
		r.MessageID, r.UserID, r.Emoji, ms(r.CreatedAt)); err != nil {
		if isForeignKey(err) {
			return false, ErrNotFound
		}
		return false, fmt.Errorf("store: add chat reaction: %w", err)
	}
	return true, tx.Commit()
}

// ListChatReactions returns the reactions of the messages, oldest first.
func (s *Store) ListChatReactions(ctx context.Context, messageIDs []int64) ([]ChatReaction, error) {
	out := []ChatReaction{}
	if len(messageIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(messageIDs))
	for i, id := range messageIDs {
		args[i] = id
	}
	rows, err := s.db.QueryContext(ctx, `SELECT r.message_id, r.user_id, u.username, r.emoji, r.created_at
		FROM chat_reactions r JOIN users u ON u.id = r.user_id
		WHERE r.message_id IN (?`+strings.Repeat(", ?", len(messageIDs)-1)+`)
		ORDER BY r.created_at, r.rowid`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var r ChatReaction
		var created sql.NullInt64
		if err := rows.Scan(&r.MessageID, &r.UserID, &r.Username, &r.Emoji, &created); err != nil {
			return nil, err
		}
		r.CreatedAt = fromMS(created)
		out = append(out, r)
	}
	return out, rows.Err()
}

// ChatPin is a pinned message.
type ChatPin struct {
	MessageID int64
	ChannelID int64
	PinnedBy  int64 // 0 when the pinner was deleted
	// PinnedByName and Message are filled in on reads.
	PinnedByName string
	PinnedAt     time.Time
	Message      ChatMessage
}

// PinChatMessage pins a message: ErrConflict when it is pinned already, ErrLimit when the
// channel has maxPerChannel pins, ErrNotFound for an unknown message.
func (s *Store) PinChatMessage(ctx context.Context, p ChatPin, maxPerChannel int) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM chat_pins WHERE channel_id = ?", p.ChannelID).Scan(&n); err != nil {
		return err
	}
	var exists int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM chat_pins WHERE message_id = ?", p.MessageID).Scan(&exists); err != nil {
		return err
	}
	switch {
	case exists > 0:
		return ErrConflict
	case n >= maxPerChannel:
		return ErrLimit
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO chat_pins (message_id, channel_id, pinned_by, pinned_at) VALUES (?, ?, ?, ?)",
		p.MessageID, p.ChannelID, nullID(p.PinnedBy), ms(p.PinnedAt)); err != nil {
		if isForeignKey(err) {
			return ErrNotFound
		}
		return fmt.Errorf("store: pin chat message: %w", err)
	}
	return tx.Commit()
}

// UnpinChatMessage unpins a message (ErrNotFound when it is not pinned).
func (s *Store) UnpinChatMessage(ctx context.Context, messageID int64) error {
	return affected(s.db.ExecContext(ctx, "DELETE FROM chat_pins WHERE message_id = ?", messageID))
}

// ListChatPins returns a channel's pins, oldest first, with their messages.
func (s *Store) ListChatPins(ctx context.Context, channelID int64) ([]ChatPin, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT p.pinned_by, COALESCE(pu.username, ''), p.pinned_at, `+chatMessageCols+
		chatMessageFrom+` JOIN chat_pins p ON p.message_id = m.id LEFT JOIN users pu ON pu.id = p.pinned_by
		WHERE p.channel_id = ? ORDER BY p.pinned_at, p.message_id`, channelID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []ChatPin{}
	for rows.Next() {
		var p ChatPin
		var by, at sql.NullInt64
		m := &p.Message
		var reply, created, edited sql.NullInt64
		if err := rows.Scan(&by, &p.PinnedByName, &at, &m.ID, &m.ChannelID, &m.UserID, &m.Username, &m.UserIsAdmin,
			&m.Body, &reply, &m.Anonymous, &created, &edited); err != nil {
			return nil, err
		}
		m.ReplyTo, m.CreatedAt, m.EditedAt = reply.Int64, fromMS(created), fromMS(edited)
		p.MessageID, p.ChannelID, p.PinnedBy, p.PinnedAt = m.ID, m.ChannelID, by.Int64, fromMS(at)
		out = append(out, p)
	}
	return out, rows.Err()
}

// MarkChatRead records that userID has read channelID up to messageID; the position never
// moves back.
func (s *Store) MarkChatRead(ctx context.Context, userID, channelID, messageID int64) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO chat_reads (user_id, channel_id, last_read_id) VALUES (?, ?, ?)
		ON CONFLICT (user_id, channel_id) DO UPDATE SET last_read_id = MAX(last_read_id, excluded.last_read_id)`,
		userID, channelID, messageID)
	if err != nil {
		if isForeignKey(err) {
			return ErrNotFound
		}
		return fmt.Errorf("store: mark chat read: %w", err)
	}
	return nil
}

// ChatUnreadCounts returns, per channel with unread messages, how many messages by other
// users userID has not read.
func (s *Store) ChatUnreadCounts(ctx context.Context, userID int64) (map[int64]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT m.channel_id, COUNT(*) FROM chat_messages m
		LEFT JOIN chat_reads r ON r.channel_id = m.channel_id AND r.user_id = ?
		WHERE m.user_id != ? AND m.id > COALESCE(r.last_read_id, 0)
		GROUP BY m.channel_id`, userID, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]int{}
	for rows.Next() {
		var ch int64
		var n int
		if err := rows.Scan(&ch, &n); err != nil {
			return nil, err
		}
		out[ch] = n
	}
	return out, rows.Err()
}
