"""GitHub adapters: the REST client, the tracker, the Actions runner protocol."""
