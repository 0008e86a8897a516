"""Markets: the ISO 3166-1 alpha-2 codes a market may have, and each one's defaults.

A market is registered the first time anything names it, with the working language and the
time zone below, which are stored with it: changing a default here does not move the days of
a market already registered. Reports count days in the market's time zone, so every code has
a real IANA zone: the capital's (or most populous region's) where a country spans several.
"""

from __future__ import annotations

from typing import Final

# Code: (the language a QA team of that market most likely works in, its time zone). All 249
# officially assigned ISO 3166-1 alpha-2 codes, as the IANA tz database's iso3166.tab lists
# them; the comment is that file's short name.
_DEFAULTS: Final[dict[str, tuple[str, str]]] = {
    "AD": ("ca", "Europe/Andorra"),  # Andorra
    "AE": ("ar", "Asia/Dubai"),  # United Arab Emirates
    "AF": ("fa", "Asia/Kabul"),  # Afghanistan
    "AG": ("en", "America/Antigua"),  # Antigua & Barbuda
    "AI": ("en", "America/Anguilla"),  # Anguilla
    "AL": ("sq", "Europe/Tirane"),  # Albania
    "AM": ("hy", "Asia/Yerevan"),  # Armenia
    "AO": ("pt", "Africa/Luanda"),  # Angola
    "AQ": ("en", "Antarctica/McMurdo"),  # Antarctica
    "AR": ("es", "America/Argentina/Buenos_Aires"),  # Argentina
    "AS": ("sm", "Pacific/Pago_Pago"),  # Samoa (American)
    "AT": ("de", "Europe/Vienna"),  # Austria
    "AU": ("en", "Australia/Sydney"),  # Australia
    "AW": ("nl", "America/Aruba"),  # Aruba
    "AX": ("sv", "Europe/Mariehamn"),  # Åland Islands
    "AZ": ("az", "Asia/Baku"),  # Azerbaijan
    "BA": ("bs", "Europe/Sarajevo"),  # Bosnia & Herzegovina
    "BB": ("en", "America/Barbados"),  # Barbados
    "BD": ("bn", "Asia/Dhaka"),  # Bangladesh
    "BE": ("nl", "Europe/Brussels"),  # Belgium
    "BF": ("fr", "Africa/Ouagadougou"),  # Burkina Faso
    "BG": ("bg", "Europe/Sofia"),  # Bulgaria
    "BH": ("ar", "Asia/Bahrain"),  # Bahrain
    "BI": ("rn", "Africa/Bujumbura"),  # Burundi
    "BJ": ("fr", "Africa/Porto-Novo"),  # Benin
    "BL": ("fr", "America/St_Barthelemy"),  # St Barthelemy
    "BM": ("en", "Atlantic/Bermuda"),  # Bermuda
    "BN": ("ms", "Asia/Brunei"),  # Brunei
    "BO": ("es", "America/La_Paz"),  # Bolivia
    "BQ": ("nl", "America/Kralendijk"),  # Caribbean NL
    "BR": ("pt", "America/Sao_Paulo"),  # Brazil
    "BS": ("en", "America/Nassau"),  # Bahamas
    "BT": ("dz", "Asia/Thimphu"),  # Bhutan
    "BV": ("no", "Europe/Oslo"),  # Bouvet Island
    "BW": ("en", "Africa/Gaborone"),  # Botswana
    "BY": ("be", "Europe/Minsk"),  # Belarus
    "BZ": ("en", "America/Belize"),  # Belize
    "CA": ("en", "America/Toronto"),  # Canada
    "CC": ("en", "Indian/Cocos"),  # Cocos (Keeling) Islands
    "CD": ("fr", "Africa/Kinshasa"),  # Congo (Dem. Rep.)
    "CF": ("fr", "Africa/Bangui"),  # Central African Rep.
    "CG": ("fr", "Africa/Brazzaville"),  # Congo (Rep.)
    "CH": ("de", "Europe/Zurich"),  # Switzerland
    "CI": ("fr", "Africa/Abidjan"),  # Côte d'Ivoire
    "CK": ("en", "Pacific/Rarotonga"),  # Cook Islands
    "CL": ("es", "America/Santiago"),  # Chile
    "CM": ("fr", "Africa/Douala"),  # Cameroon
    "CN": ("zh", "Asia/Shanghai"),  # China
    "CO": ("es", "America/Bogota"),  # Colombia
    "CR": ("es", "America/Costa_Rica"),  # Costa Rica
    "CU": ("es", "America/Havana"),  # Cuba
    "CV": ("pt", "Atlantic/Cape_Verde"),  # Cape Verde
    "CW": ("nl", "America/Curacao"),  # Curaçao
    "CX": ("en", "Indian/Christmas"),  # Christmas Island
    "CY": ("el", "Asia/Nicosia"),  # Cyprus
    "CZ": ("cs", "Europe/Prague"),  # Czech Republic
    "DE": ("de", "Europe/Berlin"),  # Germany
    "DJ": ("fr", "Africa/Djibouti"),  # Djibouti
    "DK": ("da", "Europe/Copenhagen"),  # Denmark
    "DM": ("en", "America/Dominica"),  # Dominica
    "DO": ("es", "America/Santo_Domingo"),  # Dominican Republic
    "DZ": ("ar", "Africa/Algiers"),  # Algeria
    "EC": ("es", "America/Guayaquil"),  # Ecuador
    "EE": ("et", "Europe/Tallinn"),  # Estonia
    "EG": ("ar", "Africa/Cairo"),  # Egypt
    "EH": ("ar", "Africa/El_Aaiun"),  # Western Sahara
    "ER": ("ti", "Africa/Asmara"),  # Eritrea
    "ES": ("es", "Europe/Madrid"),  # Spain
    "ET": ("am", "Africa/Addis_Ababa"),  # Ethiopia
    "FI": ("fi", "Europe/Helsinki"),  # Finland
    "FJ": ("en", "Pacific/Fiji"),  # Fiji
    "FK": ("en", "Atlantic/Stanley"),  # Falkland Islands
    "FM": ("en", "Pacific/Pohnpei"),  # Micronesia
    "FO": ("fo", "Atlantic/Faroe"),  # Faroe Islands
    "FR": ("fr", "Europe/Paris"),  # France
    "GA": ("fr", "Africa/Libreville"),  # Gabon
    "GB": ("en", "Europe/London"),  # Britain (UK)
    "GD": ("en", "America/Grenada"),  # Grenada
    "GE": ("ka", "Asia/Tbilisi"),  # Georgia
    "GF": ("fr", "America/Cayenne"),  # French Guiana
    "GG": ("en", "Europe/Guernsey"),  # Guernsey
    "GH": ("en", "Africa/Accra"),  # Ghana
    "GI": ("en", "Europe/Gibraltar"),  # Gibraltar
    "GL": ("kl", "America/Nuuk"),  # Greenland
    "GM": ("en", "Africa/Banjul"),  # Gambia
    "GN": ("fr", "Africa/Conakry"),  # Guinea
    "GP": ("fr", "America/Guadeloupe"),  # Guadeloupe
    "GQ": ("es", "Africa/Malabo"),  # Equatorial Guinea
    "GR": ("el", "Europe/Athens"),  # Greece
    "GS": ("en", "Atlantic/South_Georgia"),  # South Georgia & the South Sandwich Islands
    "GT": ("es", "America/Guatemala"),  # Guatemala
    "GU": ("en", "Pacific/Guam"),  # Guam
    "GW": ("pt", "Africa/Bissau"),  # Guinea-Bissau
    "GY": ("en", "America/Guyana"),  # Guyana
    "HK": ("zh", "Asia/Hong_Kong"),  # Hong Kong
    "HM": ("en", "Australia/Sydney"),  # Heard Island & McDonald Islands
    "HN": ("es", "America/Tegucigalpa"),  # Honduras
    "HR": ("hr", "Europe/Zagreb"),  # Croatia
    "HT": ("ht", "America/Port-au-Prince"),  # Haiti
    "HU": ("hu", "Europe/Budapest"),  # Hungary
    "ID": ("id", "Asia/Jakarta"),  # Indonesia
    "IE": ("en", "Europe/Dublin"),  # Ireland
    "IL": ("he", "Asia/Jerusalem"),  # Israel
    "IM": ("en", "Europe/Isle_of_Man"),  # Isle of Man
    "IN": ("hi", "Asia/Kolkata"),  # India
    "IO": ("en", "Indian/Chagos"),  # British Indian Ocean Territory
    "IQ": ("ar", "Asia/Baghdad"),  # Iraq
    "IR": ("fa", "Asia/Tehran"),  # Iran
    "IS": ("is", "Atlantic/Reykjavik"),  # Iceland
    "IT": ("it", "Europe/Rome"),  # Italy
    "JE": ("en", "Europe/Jersey"),  # Jersey
    "JM": ("en", "America/Jamaica"),  # Jamaica
    "JO": ("ar", "Asia/Amman"),  # Jordan
    "JP": ("ja", "Asia/Tokyo"),  # Japan
    "KE": ("sw", "Africa/Nairobi"),  # Kenya
    "KG": ("ky", "Asia/Bishkek"),  # Kyrgyzstan
    "KH": ("km", "Asia/Phnom_Penh"),  # Cambodia
    "KI": ("en", "Pacific/Tarawa"),  # Kiribati
    "KM": ("ar", "Indian/Comoro"),  # Comoros
    "KN": ("en", "America/St_Kitts"),  # St Kitts & Nevis
    "KP": ("ko", "Asia/Pyongyang"),  # Korea (North)
    "KR": ("ko", "Asia/Seoul"),  # Korea (South)
    "KW": ("ar", "Asia/Kuwait"),  # Kuwait
    "KY": ("en", "America/Cayman"),  # Cayman Islands
    "KZ": ("ru", "Asia/Almaty"),  # Kazakhstan
    "LA": ("lo", "Asia/Vientiane"),  # Laos
    "LB": ("ar", "Asia/Beirut"),  # Lebanon
    "LC": ("en", "America/St_Lucia"),  # St Lucia
    "LI": ("de", "Europe/Vaduz"),  # Liechtenstein
    "LK": ("si", "Asia/Colombo"),  # Sri Lanka
    "LR": ("en", "Africa/Monrovia"),  # Liberia
    "LS": ("st", "Africa/Maseru"),  # Lesotho
    "LT": ("lt", "Europe/Vilnius"),  # Lithuania
    "LU": ("fr", "Europe/Luxembourg"),  # Luxembourg
    "LV": ("lv", "Europe/Riga"),  # Latvia
    "LY": ("ar", "Africa/Tripoli"),  # Libya
    "MA": ("ar", "Africa/Casablanca"),  # Morocco
    "MC": ("fr", "Europe/Monaco"),  # Monaco
    "MD": ("ro", "Europe/Chisinau"),  # Moldova
    "ME": ("sr", "Europe/Podgorica"),  # Montenegro
    "MF": ("fr", "America/Marigot"),  # St Martin (French)
    "MG": ("mg", "Indian/Antananarivo"),  # Madagascar
    "MH": ("en", "Pacific/Majuro"),  # Marshall Islands
    "MK": ("mk", "Europe/Skopje"),  # North Macedonia
    "ML": ("fr", "Africa/Bamako"),  # Mali
    "MM": ("my", "Asia/Yangon"),  # Myanmar (Burma)
    "MN": ("mn", "Asia/Ulaanbaatar"),  # Mongolia
    "MO": ("zh", "Asia/Macau"),  # Macau
    "MP": ("en", "Pacific/Saipan"),  # Northern Mariana Islands
    "MQ": ("fr", "America/Martinique"),  # Martinique
    "MR": ("ar", "Africa/Nouakchott"),  # Mauritania
    "MS": ("en", "America/Montserrat"),  # Montserrat
    "MT": ("mt", "Europe/Malta"),  # Malta
    "MU": ("en", "Indian/Mauritius"),  # Mauritius
    "MV": ("dv", "Indian/Maldives"),  # Maldives
    "MW": ("en", "Africa/Blantyre"),  # Malawi
    "MX": ("es", "America/Mexico_City"),  # Mexico
    "MY": ("ms", "Asia/Kuala_Lumpur"),  # Malaysia
    "MZ": ("pt", "Africa/Maputo"),  # Mozambique
    "NA": ("en", "Africa/Windhoek"),  # Namibia
    "NC": ("fr", "Pacific/Noumea"),  # New Caledonia
    "NE": ("fr", "Africa/Niamey"),  # Niger
    "NF": ("en", "Pacific/Norfolk"),  # Norfolk Island
    "NG": ("en", "Africa/Lagos"),  # Nigeria
    "NI": ("es", "America/Managua"),  # Nicaragua
    "NL": ("nl", "Europe/Amsterdam"),  # Netherlands
    "NO": ("no", "Europe/Oslo"),  # Norway
    "NP": ("ne", "Asia/Kathmandu"),  # Nepal
    "NR": ("en", "Pacific/Nauru"),  # Nauru
    "NU": ("en", "Pacific/Niue"),  # Niue
    "NZ": ("en", "Pacific/Auckland"),  # New Zealand
    "OM": ("ar", "Asia/Muscat"),  # Oman
    "PA": ("es", "America/Panama"),  # Panama
    "PE": ("es", "America/Lima"),  # Peru
    "PF": ("fr", "Pacific/Tahiti"),  # French Polynesia
    "PG": ("en", "Pacific/Port_Moresby"),  # Papua New Guinea
    "PH": ("fil", "Asia/Manila"),  # Philippines
    "PK": ("ur", "Asia/Karachi"),  # Pakistan
    "PL": ("pl", "Europe/Warsaw"),  # Poland
    "PM": ("fr", "America/Miquelon"),  # St Pierre & Miquelon
    "PN": ("en", "Pacific/Pitcairn"),  # Pitcairn
    "PR": ("es", "America/Puerto_Rico"),  # Puerto Rico
    "PS": ("ar", "Asia/Gaza"),  # Palestine
    "PT": ("pt", "Europe/Lisbon"),  # Portugal
    "PW": ("en", "Pacific/Palau"),  # Palau
    "PY": ("es", "America/Asuncion"),  # Paraguay
    "QA": ("ar", "Asia/Qatar"),  # Qatar
    "RE": ("fr", "Indian/Reunion"),  # Réunion
    "RO": ("ro", "Europe/Bucharest"),  # Romania
    "RS": ("sr", "Europe/Belgrade"),  # Serbia
    "RU": ("ru", "Europe/Moscow"),  # Russia
    "RW": ("rw", "Africa/Kigali"),  # Rwanda
    "SA": ("ar", "Asia/Riyadh"),  # Saudi Arabia
    "SB": ("en", "Pacific/Guadalcanal"),  # Solomon Islands
    "SC": ("fr", "Indian/Mahe"),  # Seychelles
    "SD": ("ar", "Africa/Khartoum"),  # Sudan
    "SE": ("sv", "Europe/Stockholm"),  # Sweden
    "SG": ("en", "Asia/Singapore"),  # Singapore
    "SH": ("en", "Atlantic/St_Helena"),  # St Helena
    "SI": ("sl", "Europe/Ljubljana"),  # Slovenia
    "SJ": ("no", "Arctic/Longyearbyen"),  # Svalbard & Jan Mayen
    "SK": ("sk", "Europe/Bratislava"),  # Slovakia
    "SL": ("en", "Africa/Freetown"),  # Sierra Leone
    "SM": ("it", "Europe/San_Marino"),  # San Marino
    "SN": ("fr", "Africa/Dakar"),  # Senegal
    "SO": ("so", "Africa/Mogadishu"),  # Somalia
    "SR": ("nl", "America/Paramaribo"),  # Suriname
    "SS": ("en", "Africa/Juba"),  # South Sudan
    "ST": ("pt", "Africa/Sao_Tome"),  # Sao Tome & Principe
    "SV": ("es", "America/El_Salvador"),  # El Salvador
    "SX": ("en", "America/Lower_Princes"),  # St Maarten (Dutch)
    "SY": ("ar", "Asia/Damascus"),  # Syria
    "SZ": ("en", "Africa/Mbabane"),  # Eswatini (Swaziland)
    "TC": ("en", "America/Grand_Turk"),  # Turks & Caicos Is
    "TD": ("fr", "Africa/Ndjamena"),  # Chad
    "TF": ("fr", "Indian/Kerguelen"),  # French S. Terr.
    "TG": ("fr", "Africa/Lome"),  # Togo
    "TH": ("th", "Asia/Bangkok"),  # Thailand
    "TJ": ("tg", "Asia/Dushanbe"),  # Tajikistan
    "TK": ("en", "Pacific/Fakaofo"),  # Tokelau
    "TL": ("pt", "Asia/Dili"),  # East Timor
    "TM": ("tk", "Asia/Ashgabat"),  # Turkmenistan
    "TN": ("ar", "Africa/Tunis"),  # Tunisia
    "TO": ("to", "Pacific/Tongatapu"),  # Tonga
    "TR": ("tr", "Europe/Istanbul"),  # Turkey
    "TT": ("en", "America/Port_of_Spain"),  # Trinidad & Tobago
    "TV": ("en", "Pacific/Funafuti"),  # Tuvalu
    "TW": ("zh", "Asia/Taipei"),  # Taiwan
    "TZ": ("sw", "Africa/Dar_es_Salaam"),  # Tanzania
    "UA": ("uk", "Europe/Kyiv"),  # Ukraine
    "UG": ("en", "Africa/Kampala"),  # Uganda
    "UM": ("en", "Pacific/Midway"),  # US minor outlying islands
    "US": ("en", "America/New_York"),  # United States
    "UY": ("es", "America/Montevideo"),  # Uruguay
    "UZ": ("uz", "Asia/Tashkent"),  # Uzbekistan
    "VA": ("it", "Europe/Vatican"),  # Vatican City
    "VC": ("en", "America/St_Vincent"),  # St Vincent
    "VE": ("es", "America/Caracas"),  # Venezuela
    "VG": ("en", "America/Tortola"),  # Virgin Islands (UK)
    "VI": ("en", "America/St_Thomas"),  # Virgin Islands (US)
    "VN": ("vi", "Asia/Ho_Chi_Minh"),  # Vietnam
    "VU": ("bi", "Pacific/Efate"),  # Vanuatu
    "WF": ("fr", "Pacific/Wallis"),  # Wallis & Futuna
    "WS": ("sm", "Pacific/Apia"),  # Samoa (western)
    "YE": ("ar", "Asia/Aden"),  # Yemen
    "YT": ("fr", "Indian/Mayotte"),  # Mayotte
    "ZA": ("en", "Africa/Johannesburg"),  # South Africa
    "ZM": ("en", "Africa/Lusaka"),  # Zambia
    "ZW": ("en", "Africa/Harare"),  # Zimbabwe
}

MARKET_CODES: Final[frozenset[str]] = frozenset(_DEFAULTS)
"""Every officially assigned ISO 3166-1 alpha-2 code (upper case): the valid market codes."""


def default_time_zone(market: str) -> str:
    """The market's principal IANA time zone (``Europe/Berlin`` for DE).

    UTC for a code that is not an assigned one, which only a market stored before codes were
    checked can have.
    """
    defaults = _DEFAULTS.get(market.upper())
    return defaults[1] if defaults else "UTC"


def default_language(market: str) -> str:
    """The market's default working language (``de`` for DE, AT and CH); ``en`` if unknown."""
    defaults = _DEFAULTS.get(market.upper())
    return defaults[0] if defaults else "en"
