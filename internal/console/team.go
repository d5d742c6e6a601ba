package console

// teamRoutes are the endpoints for members, invitations, roles, TOTP and passwords.
func (cs *Console) teamRoutes() []route { return nil }
