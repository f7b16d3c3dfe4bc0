"""Scale-out on Ray: ``classify-many`` over many rasters (or one huge one) on a laptop, a GPU workstation or a
cluster, resumable, merged into the outputs ``classify`` writes. Ray is the optional extra ``rs-scene[ray]``;
``shards`` and ``manifest`` import without it."""
