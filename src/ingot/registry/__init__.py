"""The industry registry: divisions, parks, groups, enterprises, sites, production units and their dated facts."""
