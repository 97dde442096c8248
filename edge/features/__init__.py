"""Feature values: the compact per-camera record of per-zone numbers a city platform stores."""

from edge.features.aggregator import FeatureAggregator, OccupancyGrid

__all__ = ["FeatureAggregator", "OccupancyGrid"]
