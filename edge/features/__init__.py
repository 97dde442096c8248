"""Feature values: the compact per-camera record of per-zone numbers a city platform stores."""

from edge.features.aggregator import (
    FeatureAggregator,
    FeatureRecord,
    OccupancyGrid,
    ZoneFeatures,
    ZoneObservation,
)

__all__ = ["FeatureAggregator", "FeatureRecord", "OccupancyGrid", "ZoneFeatures", "ZoneObservation"]
