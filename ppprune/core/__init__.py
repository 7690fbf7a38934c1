"""The pruning core: graph views, channel rules, groups, criteria, selectors, plans and appliers."""
