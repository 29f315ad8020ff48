package apiserver

// SharedStreams is how many resources have a shared watch stream on this server, for tests.
func (s *Server) SharedStreams() int {
	s.hubs.mu.Lock()
	defer s.hubs.mu.Unlock()
	return len(s.hubs.hubs)
}
