package image

// RecordPathForTest exposes where ref's record is, for tests that age it.
func RecordPathForTest(s *Store, ref string) string {
	key, _ := normalize(ref)
	return s.recordPath(key)
}
