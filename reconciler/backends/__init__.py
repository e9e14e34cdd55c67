"""The I/O edge.  Only modules in this package import libvirt, rados or rbd."""
