"""zipl: the bootmap chain reader (bootmap), its checks (check), the installer (installer) and zipl.conf (config)."""
