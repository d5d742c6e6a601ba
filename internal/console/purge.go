package console

// retentionRoutes are the endpoints for the retention settings and purge runs.
func (cs *Console) retentionRoutes() []route { return nil }
