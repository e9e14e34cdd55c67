"""`volctl lab`: a real local datacenter (single-node Ceph + N libvirtd hosts) on one machine."""
