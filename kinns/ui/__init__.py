"""`kinns ui`: a live web view of the cluster, served on loopback."""
