/*-------------------------------------------------------------------------
 *
 * time.c
 *		RFC 3339 timestamps and humantime durations, as the reference model
 *		serializes them.
 *
 * Timestamps are kept as nanoseconds since the Unix epoch so that a client's
 * nine-digit fraction survives a round trip; output is always UTC with a Z
 * and 0, 3, 6 or 9 fraction digits.  Durations follow the Rust humantime
 * crate that the reference uses, including its canonical output form
 * ("1m 30s"), so stored documents look the same as upstream's.
 *
 * src/time.c
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg.h"

/* Days from 1970-01-01 to the given civil date (proleptic Gregorian). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t		era;
	int64_t		yoe,
				doy,
				doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t		era,
				doe,
				yoe,
				doy,
				mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int) (doy - (153 * mp + 2) / 5 + 1);
	*m = (int) (mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static bool
read_digits(const char **p, int n, int *out)
{
	int			v = 0;

	for (int i = 0; i < n; i++)
	{
		if (!isdigit((unsigned char) (*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool
is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

bool
dg_time_parse(const char *text, dg_time *out)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *p = text;
	int			year,
				month,
				day,
				hour,
				minute,
				second;
	int64_t		frac = 0;
	int64_t		offset = 0;
	int64_t		secs;

	if (text == NULL)
		return false;
	if (!read_digits(&p, 4, &year) || *p++ != '-' ||
		!read_digits(&p, 2, &month) || *p++ != '-' ||
		!read_digits(&p, 2, &day))
		return false;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return false;
	p++;
	if (!read_digits(&p, 2, &hour) || *p++ != ':' ||
		!read_digits(&p, 2, &minute) || *p++ != ':' ||
		!read_digits(&p, 2, &second))
		return false;
	if (month < 1 || month > 12 || day < 1 ||
		day > mdays[month - 1] + (month == 2 && is_leap(year)) ||
		hour > 23 || minute > 59 || second > 60)
		return false;
	if (*p == '.')
	{
		int			digits = 0;

		p++;
		if (!isdigit((unsigned char) *p))
			return false;
		while (isdigit((unsigned char) *p))
		{
			/* digits beyond nanoseconds are dropped, not rounded */
			if (digits < 9)
			{
				frac = frac * 10 + (*p - '0');
				digits++;
			}
			p++;
		}
		while (digits++ < 9)
			frac *= 10;
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-')
	{
		int			sign = *p == '-' ? -1 : 1;
		int			oh,
					om;

		p++;
		if (!read_digits(&p, 2, &oh) || *p++ != ':' || !read_digits(&p, 2, &om) ||
			oh > 23 || om > 59)
			return false;
		offset = sign * (oh * 3600 + om * 60);
	}
	else
		return false;
	if (*p != '\0')
		return false;
	/* a leap second is folded into the next second, as chrono does */
	secs = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 +
		second - offset;
	/* keep within the range of int64 nanoseconds (years 1678..2261) */
	if (secs < -9223372035LL || secs > 9223372035LL)
		return false;
	*out = secs * DG_NS_PER_S + frac;
	return true;
}

void
dg_time_format(dg_time t, char *buf)
{
	int64_t		secs = t / DG_NS_PER_S;
	int64_t		ns = t % DG_NS_PER_S;
	int64_t		days,
				rem,
				y;
	int			m,
				d;
	int			n;

	if (ns < 0)
	{
		ns += DG_NS_PER_S;
		secs--;
	}
	days = secs / 86400;
	rem = secs % 86400;
	if (rem < 0)
	{
		rem += 86400;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	n = sprintf(buf, "%04lld-%02d-%02dT%02d:%02d:%02d", (long long) y, m, d,
				(int) (rem / 3600), (int) (rem % 3600 / 60), (int) (rem % 60));
	if (ns == 0)
		sprintf(buf + n, "Z");
	else if (ns % DG_NS_PER_MS == 0)
		sprintf(buf + n, ".%03lldZ", (long long) (ns / DG_NS_PER_MS));
	else if (ns % DG_NS_PER_US == 0)
		sprintf(buf + n, ".%06lldZ", (long long) (ns / DG_NS_PER_US));
	else
		sprintf(buf + n, ".%09lldZ", (long long) ns);
}

json_object *
dg_time_json(dg_time t)
{
	char		buf[64];

	dg_time_format(t, buf);
	return json_object_new_string(buf);
}

/* Units accepted by humantime, longest spellings first within a family. */
static const struct
{
	const char *name;
	int64_t		ns;
}			duration_units[] =
{
	{"nanoseconds", 1}, {"nanosecond", 1}, {"nanos", 1}, {"nsec", 1}, {"ns", 1},
	{"microseconds", 1000}, {"microsecond", 1000}, {"micros", 1000}, {"usec", 1000}, {"us", 1000},
	{"milliseconds", DG_NS_PER_MS}, {"millisecond", DG_NS_PER_MS}, {"millis", DG_NS_PER_MS},
	{"msecs", DG_NS_PER_MS}, {"msec", DG_NS_PER_MS}, {"ms", DG_NS_PER_MS},
	{"seconds", DG_NS_PER_S}, {"second", DG_NS_PER_S}, {"secs", DG_NS_PER_S},
	{"sec", DG_NS_PER_S}, {"s", DG_NS_PER_S},
	{"minutes", 60 * DG_NS_PER_S}, {"minute", 60 * DG_NS_PER_S}, {"mins", 60 * DG_NS_PER_S},
	{"min", 60 * DG_NS_PER_S}, {"m", 60 * DG_NS_PER_S},
	{"hours", 3600 * DG_NS_PER_S}, {"hour", 3600 * DG_NS_PER_S}, {"hrs", 3600 * DG_NS_PER_S},
	{"hr", 3600 * DG_NS_PER_S}, {"h", 3600 * DG_NS_PER_S},
	{"days", 86400 * DG_NS_PER_S}, {"day", 86400 * DG_NS_PER_S}, {"d", 86400 * DG_NS_PER_S},
	{"weeks", 604800 * DG_NS_PER_S}, {"week", 604800 * DG_NS_PER_S}, {"w", 604800 * DG_NS_PER_S},
	{"months", 2630016 * DG_NS_PER_S}, {"month", 2630016 * DG_NS_PER_S}, {"M", 2630016 * DG_NS_PER_S},
	{"years", 31557600 * DG_NS_PER_S}, {"year", 31557600 * DG_NS_PER_S}, {"y", 31557600 * DG_NS_PER_S},
};

bool
dg_duration_parse(const char *text, int64_t *out)
{
	const char *p = text;
	int64_t		total = 0;
	bool		any = false;

	if (text == NULL)
		return false;
	for (;;)
	{
		int64_t		amount = 0;
		const char *unit;
		size_t		ulen;
		int64_t		mult = -1;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if (!isdigit((unsigned char) *p))
			return false;
		while (isdigit((unsigned char) *p))
		{
			if (amount > (INT64_MAX - 9) / 10)
				return false;
			amount = amount * 10 + (*p++ - '0');
		}
		while (*p == ' ')
			p++;
		unit = p;
		while (isalpha((unsigned char) *p))
			p++;
		ulen = p - unit;
		for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++)
		{
			if (strlen(duration_units[i].name) == ulen &&
				strncmp(duration_units[i].name, unit, ulen) == 0)
			{
				mult = duration_units[i].ns;
				break;
			}
		}
		if (mult < 0)
			return false;
		if (amount > (INT64_MAX - total) / mult)
			return false;
		total += amount * mult;
		any = true;
	}
	if (!any)
		return false;
	*out = total;
	return true;
}

void
dg_duration_format(int64_t ns, char *buf)
{
	static const struct
	{
		const char *name;
		int64_t		ns;
		bool		plural;
	}			parts[] =
	{
		{"year", 31557600 * DG_NS_PER_S, true},
		{"month", 2630016 * DG_NS_PER_S, true},
		{"day", 86400 * DG_NS_PER_S, true},
		{"h", 3600 * DG_NS_PER_S, false},
		{"m", 60 * DG_NS_PER_S, false},
		{"s", DG_NS_PER_S, false},
		{"ms", DG_NS_PER_MS, false},
		{"us", DG_NS_PER_US, false},
		{"ns", 1, false},
	};
	char	   *p = buf;

	*p = '\0';
	if (ns <= 0)
	{
		strcpy(buf, "0s");
		return;
	}
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
	{
		int64_t		n = ns / parts[i].ns;

		if (n == 0)
			continue;
		ns -= n * parts[i].ns;
		p += sprintf(p, "%s%lld%s%s", p == buf ? "" : " ", (long long) n,
					 parts[i].name, parts[i].plural && n > 1 ? "s" : "");
	}
}

bool
dg_delay_from_json(json_object *value, int64_t *out, bool *present)
{
	*present = false;
	if (value == NULL)
		return true;
	switch (json_object_get_type(value))
	{
		case json_type_int:
			if (llabs((long long) json_object_get_int64(value)) > 9000000000LL)
				return false;
			*out = json_object_get_int64(value) * DG_NS_PER_S;
			*present = true;
			return true;
		case json_type_double:
			{
				double		d = trunc(json_object_get_double(value));

				if (!isfinite(d) || fabs(d) > 9.0e9)
					return false;
				*out = (int64_t) d * DG_NS_PER_S;
				*present = true;
				return true;
			}
		case json_type_string:
			if (!dg_duration_parse(json_object_get_string(value), out))
				return false;
			*present = true;
			return true;
		default:
			return false;
	}
}
