"""The platform: nodes, full-duplex links and static routes; topology files, generators and
GraphML import."""
