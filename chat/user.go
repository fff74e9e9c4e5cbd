package chat

// Role is a user's server-wide chat role.
type Role int

// Roles. The zero value is RoleUnknown, which has no rights beyond RoleUser's.
const (
	RoleUnknown Role = iota
	RoleUser
	RoleModerator
	RoleAdmin
)

var roleNames = [...]string{RoleUnknown: "unknown", RoleUser: "user", RoleModerator: "moderator", RoleAdmin: "admin"}

// String returns the role as the wire shows it ("user", "moderator", "admin").
func (r Role) String() string {
	if r < 0 || int(r) >= len(roleNames) {
		return roleNames[RoleUnknown]
	}
	return roleNames[r]
}

// User is an authenticated chat user, as the caller of ServeWS and of the REST methods
// established it.
type User struct {
	ID       int64
	Username string
	// Nickname is the display nickname; "" for none.
	Nickname string
	Role     Role
}

// isStaff reports whether u moderates every channel.
func (u User) isStaff() bool { return u.Role == RoleAdmin || u.Role == RoleModerator }

// canSee reports whether u may see and join ch: public channels are open to all; a
// private one to its owner and staff.
func canSee(u User, ch Channel) bool {
	return !ch.Private || u.isStaff() || (ch.OwnerID != 0 && ch.OwnerID == u.ID)
}

// canModerate reports whether u moderates ch: staff, and the channel's owner (a stream's
// owner moderates the stream's channel).
func canModerate(u User, ch Channel) bool {
	return u.isStaff() || (ch.OwnerID != 0 && ch.OwnerID == u.ID)
}

// canSend reports whether u may post in ch: anyone who sees an open channel; moderators
// only in a read-only one.
func canSend(u User, ch Channel) bool {
	return canSee(u, ch) && (!ch.ReadOnly || canModerate(u, ch))
}
