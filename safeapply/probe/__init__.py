"""What a scan finds, controller side: the model (`HostState`, ...) and the pure parsers of the probe's raw
output. The probe itself runs on hosts and lives with the rest of that code in `safeapply.target.probe`."""
