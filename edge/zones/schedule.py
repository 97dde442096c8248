"""Zone schedules: weekday + local time windows, minus exception dates, in the site's IANA time zone."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from edge.config.zones import WEEKDAYS, ScheduleConfig, hhmm_minutes


class Schedule:
    """Answers "is the zone in force at UTC epoch ``ts``?". ``None`` config means always in force."""

    def __init__(self, cfg: ScheduleConfig | None, timezone: str) -> None:
        self.cfg = cfg
        self.tz = zoneinfo.ZoneInfo(timezone)
        self._windows: list[tuple[frozenset[int], int, int]] = []
        if cfg is not None:
            for w in cfg.windows:
                days = frozenset(WEEKDAYS.index(d) for d in w.days)
                self._windows.append((days, hhmm_minutes(w.start), hhmm_minutes(w.end)))
        self._except = frozenset(cfg.except_dates) if cfg is not None else frozenset()

    @property
    def always(self) -> bool:
        return self.cfg is None

    def active(self, ts: float) -> bool:
        if self.cfg is None:
            return True
        local = dt.datetime.fromtimestamp(ts, self.tz)
        minute = local.hour * 60 + local.minute + local.second / 60.0
        day = local.weekday()
        today = local.date()
        for days, start, end in self._windows:
            if start < end:
                if day in days and start <= minute < end and today not in self._except:
                    return True
            else:  # wraps past midnight: the evening part belongs to today, the morning part to yesterday
                if day in days and minute >= start and today not in self._except:
                    return True
                yday = today - dt.timedelta(days=1)
                if (day - 1) % 7 in days and minute < end and yday not in self._except:
                    return True
        return False
