"""volctl: a declarative control plane for libvirt VMs and Ceph RBD volumes."""
