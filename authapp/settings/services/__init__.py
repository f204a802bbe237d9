"""The settings services, one module per subject; each public function owns its commit."""
