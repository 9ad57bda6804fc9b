"""Write a TCX file from a ride read from another format, so TCX keeps a test on vendored data.

The only real TCX ride (`gc_smartrec_2009_09_19.tcx`) is GoldenCheetah's (GPL-2.0) and is not in the project. This
helper writes a Garmin Training Center Database v2 file, as devices and tcxreader know it, from the 1 Hz samples
of a vendored ride: one `Trackpoint` per sample with `Time` (start + `elapsed_s`, so pauses stay pauses),
`AltitudeMeters`, `DistanceMeters`, `HeartRateBpm/Value`, `Cadence`, and power in the activity extension
(`ns3:TPX/ns3:Watts`). A channel's value is left out where the sample has none (NaN, or power not recorded).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import UTC, timedelta
from pathlib import Path

from training.ride_files import Ride

TCX_NS = "http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"
ACTIVITY_EXTENSION_NS = "http://www.garmin.com/xmlschemas/ActivityExtension/v2"


def _finite(value: float) -> bool:
    return not math.isnan(value)


def write_tcx(ride: Ride, path: Path) -> Path:
    """Write `ride`'s 1 Hz samples as a one-lap cycling TCX file.

    Args:
        ride: a ride read by `training.ride_files.read_ride` (any format).
        path: the `.tcx` file to write.

    Returns:
        `path`.
    """
    samples = ride.samples
    start = ride.start_time.astimezone(UTC)
    root = ET.Element("TrainingCenterDatabase", {"xmlns": TCX_NS, "xmlns:ns3": ACTIVITY_EXTENSION_NS})
    activity = ET.SubElement(ET.SubElement(root, "Activities"), "Activity", Sport="Biking")
    ET.SubElement(activity, "Id").text = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    lap = ET.SubElement(activity, "Lap", StartTime=start.strftime("%Y-%m-%dT%H:%M:%SZ"))
    ET.SubElement(lap, "TotalTimeSeconds").text = str(samples.total_elapsed_s)
    distance_m = samples.distance_m
    total_distance_m = float(distance_m[-1]) if distance_m is not None and _finite(distance_m[-1]) else 0.0
    ET.SubElement(lap, "DistanceMeters").text = f"{total_distance_m:.1f}"
    ET.SubElement(lap, "Calories").text = "0"
    ET.SubElement(lap, "Intensity").text = "Active"
    ET.SubElement(lap, "TriggerMethod").text = "Manual"
    track = ET.SubElement(lap, "Track")
    for i, elapsed_s in enumerate(samples.elapsed_s.tolist()):
        point = ET.SubElement(track, "Trackpoint")
        ET.SubElement(point, "Time").text = (start + timedelta(seconds=elapsed_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
        if samples.altitude_m is not None and _finite(samples.altitude_m[i]):
            ET.SubElement(point, "AltitudeMeters").text = f"{samples.altitude_m[i]:.1f}"
        if distance_m is not None and _finite(distance_m[i]):
            ET.SubElement(point, "DistanceMeters").text = f"{distance_m[i]:.2f}"
        if samples.hr_bpm is not None and _finite(samples.hr_bpm[i]):
            hr = ET.SubElement(point, "HeartRateBpm")
            ET.SubElement(hr, "Value").text = str(round(samples.hr_bpm[i]))
        if samples.cadence_rpm is not None and _finite(samples.cadence_rpm[i]):
            ET.SubElement(point, "Cadence").text = str(round(samples.cadence_rpm[i]))
        recorded = samples.power_recorded is None or bool(samples.power_recorded[i])
        if samples.power_w is not None and recorded:
            tpx = ET.SubElement(ET.SubElement(point, "Extensions"), "ns3:TPX")
            ET.SubElement(tpx, "ns3:Watts").text = str(round(samples.power_w[i]))
    # The namespace declarations are plain attributes of the root and the prefixed names plain tags, so the file
    # reads like Garmin's (ElementTree reserves the `ns<digits>` prefixes for its own use when it maps namespaces).
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    return path
