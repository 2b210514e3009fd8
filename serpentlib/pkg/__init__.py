"""Packages: binary packages and their contents, repositories and their keys, the installer, the
OS policies and tuning flags, SBOMs."""
