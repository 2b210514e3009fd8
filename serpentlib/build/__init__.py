"""Building: recipes and profiles, sources, the sandbox and stage 0, build styles, the phases of
one package and the build cache."""
