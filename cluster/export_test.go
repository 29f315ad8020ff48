package cluster

// SaveLocalCluster is for tests that edit a cluster's process list.
func SaveLocalCluster(lc *LocalCluster) error { return lc.save() }
