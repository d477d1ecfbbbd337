"""Access-pattern settings: pure, frozen value objects with documented defaults.

They live in ``models/`` so the stream and the offline replay build exactly
the same detectors from them. Every threshold says what it counts and over
which event-time window; the defaults are tuned to flag attacks as they look in
the wild (CrowdSec's HTTP scenarios, fail2ban jails, OWASP API Top 10) while
leaving busy but legitimate clients alone (carrier NAT, batch jobs, partners).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_LOGIN_ROUTE = (
    r"(?i)/(login|log-in|signin|sign-in|sign_in|authenticate|auth|token|oauth2?/token"
    r"|sessions?|password|passwd|otp|2fa|mfa)(/|$)"
)
_SENSITIVE_PATH = (
    r"(?i)(/\.env|/\.git(/|$)|/\.svn/|/\.hg/|/\.aws/|/\.ssh/|/\.htpasswd|/\.htaccess|/\.DS_Store"
    r"|/wp-admin|/wp-login\.php|/xmlrpc\.php|/wp-config|/phpmyadmin|/pma/|/adminer"
    r"|/server-status|/actuator(/|$)|/console(/|$)|/manager/html|/jenkins|/solr/admin"
    r"|/cgi-bin/|/etc/passwd|/config\.(php|json|ya?ml)|/web\.config"
    r"|\.(bak|backup|old|orig|swp|sql|sql\.gz)$|^/[^/]*\.(zip|tar|tar\.gz|tgz|7z|rar)$|/backups?(/|$))"
)
_SCANNER_AGENTS = (
    "sqlmap",
    "nikto",
    "nmap",
    "masscan",
    "zgrab",
    "nuclei",
    "gobuster",
    "dirbuster",
    "dirb/",
    "feroxbuster",
    "ffuf",
    "wfuzz",
    "wpscan",
    "acunetix",
    "nessus",
    "openvas",
    "netsparker",
    "burpcollaborator",
    "hydra",
    "medusa",
    "whatweb",
    "jaeles",
    "arachni",
    "skipfish",
    "w3af",
    "commix",
    "zmeu",
    "censysinspect",
    "l9explore",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AllowListConfig(_Strict):
    """Clients never flagged: your health checkers and synthetic monitors."""

    ips: list[str] = Field(
        default_factory=list, description="IP addresses or CIDR blocks (IPv4 or IPv6)."
    )
    user_agents: list[str] = Field(
        default_factory=lambda: ["apiwatch-synthetics/"],
        description="Case-insensitive substrings of the User-Agent.",
    )
    user_ids: list[str] = Field(default_factory=list, description="Exact user ids.")
    credential_ids: list[str] = Field(default_factory=list, description="Exact credential ids.")


class ClassifyConfig(_Strict):
    """What makes a request a login, a sensitive path or a scanner."""

    login_route: str = Field(_LOGIN_ROUTE, description="Regex searched in the route template.")
    login_methods: list[str] = Field(default_factory=lambda: ["POST", "PUT"])
    auth_failure_statuses: list[int] = Field(
        default_factory=lambda: [401, 403], description="Statuses of a failed authentication."
    )
    sensitive_path: str = Field(_SENSITIVE_PATH, description="Regex searched in the raw path.")
    scanner_agents: list[str] = Field(
        default_factory=lambda: list(_SCANNER_AGENTS),
        description="Case-insensitive substrings of known scanner User-Agents.",
    )


class FoldConfig(_Strict):
    """The ingest side: per-client micro-windows folded on the batched path."""

    window_s: float = Field(10.0, gt=0, le=300, description="Micro-window width (event time).")
    allowed_lateness_s: float = Field(
        5.0, ge=0, le=600, description="A micro-window is flushed this long after its end."
    )
    idle_flush_s: float = Field(
        2.0, gt=0, description="Wall-clock silence after which a partition's windows flush."
    )
    max_values: int = Field(
        64, ge=4, le=1024, description="Distinct values kept per set per window (ids, users...)."
    )
    max_routes: int = Field(8, ge=1, le=64, description="Routes kept per client per window.")
    sample_ids: int = Field(5, ge=0, le=50, description="Event ids kept per window as evidence.")
    max_message_bytes: int = Field(
        512_000, ge=10_000, le=900_000, description="Records are packed up to this many bytes."
    )


class BruteForceConfig(_Strict):
    """Many failed logins from one client, or against one user.

    fail2ban's default jail bans after 5 failures in 10 minutes; these defaults
    are looser (an alert is not a ban) but fast enough for slow guessing.
    """

    enabled: bool = True
    window_s: float = Field(300.0, gt=0)
    min_failures: int = Field(10, ge=1, description="Failed logins from one IP in the window.")
    min_failures_per_user: int = Field(8, ge=1, description="Failed logins against one user.")
    min_failure_ratio: float = Field(
        0.5, ge=0, le=1, description="Share of the client's login attempts that failed."
    )


class StuffingConfig(_Strict):
    """Failed logins spread over many users: from one IP, or from many IPs at once."""

    enabled: bool = True
    window_s: float = Field(300.0, gt=0)
    min_users: int = Field(10, ge=2, description="Distinct users failing from one IP.")
    min_failure_ratio: float = Field(0.5, ge=0, le=1)
    route_min_attempts: int = Field(40, ge=1, description="Logins on the route in the window.")
    route_min_users: int = Field(20, ge=2, description="Distinct users failing on the route.")
    route_min_ips: int = Field(5, ge=1, description="Distinct IPs failing on the route.")
    route_ratio_factor: float = Field(
        3.0, ge=1, description="Route failure ratio at least this times its baseline ..."
    )
    route_ratio_margin: float = Field(
        0.15, ge=0, le=1, description="... and at least this much above it."
    )
    route_users_factor: float = Field(
        3.0, ge=1, description="Or users failing and never succeeding, x their baseline."
    )
    prior_failure_ratio: float = Field(
        0.1, ge=0, le=1, description="Baseline assumed until the route has history."
    )
    baseline_minutes: int = Field(60, ge=5, description="Minutes of history in the baseline.")
    warmup_minutes: int = Field(10, ge=1, description="Minutes before the history is trusted.")


class EnumerationConfig(_Strict):
    """BOLA: one client walking many object ids on one route, many of them refused."""

    enabled: bool = True
    window_s: float = Field(120.0, gt=0)
    min_ids: int = Field(30, ge=2, description="Distinct object ids on one route.")
    min_denied_share: float = Field(
        0.2, ge=0, le=1, description="Share of 403/404 among the client's requests to it."
    )


class ScrapingConfig(_Strict):
    """Request rate or route breadth far above the population on the same routes."""

    enabled: bool = True
    window_s: float = Field(300.0, gt=0)
    reference_quantile: float = Field(
        0.9, gt=0, lt=1, description="Population quantile of per-client requests per window."
    )
    rate_factor: float = Field(20.0, ge=1, description="Client rate over the reference.")
    min_rps: float = Field(1.0, ge=0, description="And at least this many requests per second.")
    min_population: int = Field(10, ge=2, description="Clients on the route to judge against.")
    min_windows: int = Field(3, ge=1, description="Active micro-windows before judging.")
    min_distinct_share: float = Field(
        0.5, ge=0, le=1, description="Distinct paths per request: a crawl fetches new objects."
    )
    routes_factor: float = Field(5.0, ge=1, description="Distinct routes over the population's.")
    min_routes: int = Field(15, ge=2, description="And at least this many distinct routes.")
    shared_ip_min_users: int = Field(
        5, ge=2, description="An IP with this many users is shared (NAT): rate is per user."
    )


class ProbingConfig(_Strict):
    """404 storms, sensitive files and scanner User-Agents (CrowdSec http-probing & co)."""

    enabled: bool = True
    window_s: float = Field(300.0, gt=0)
    min_404_paths: int = Field(20, ge=2, description="Distinct paths answered 404.")
    min_404_share: float = Field(0.5, ge=0, le=1, description="Share of 404 among requests.")
    min_sensitive_paths: int = Field(3, ge=1, description="Distinct sensitive paths requested.")
    min_scanner_requests: int = Field(1, ge=1, description="Requests with a scanner agent.")


class TokenSharingConfig(_Strict):
    """One user or credential used from many IPs or countries at once."""

    enabled: bool = True
    window_s: float = Field(3600.0, gt=0)
    min_ips: int = Field(10, ge=2, description="Distinct IPs in the window ...")
    min_ips_countries: int = Field(2, ge=1, description="... spread over this many countries.")
    min_countries: int = Field(4, ge=2, description="Or this many distinct countries.")


class TravelConfig(_Strict):
    """Two countries too far apart for the time between (country centroids)."""

    enabled: bool = True
    window_s: float = Field(6 * 3600.0, gt=0, description="How far back visits are compared.")
    max_speed_kmh: float = Field(1000.0, gt=0, description="Faster than an airliner.")
    min_distance_km: float = Field(
        2500.0, ge=0, description="Nearer centroids are not evidence (US/CA are 2,260 km apart)."
    )
    min_events: int = Field(2, ge=1, description="Requests from each country of the pair.")


class ModelConfig(_Strict):
    """The anomalous-client model: an IsolationForest over per-client window features."""

    enabled: bool = True
    window_s: float = Field(300.0, gt=0, description="Feature window per client.")
    min_requests: int = Field(30, ge=1, description="Requests in the window to be scored.")
    sample_size: int = Field(20_000, ge=100, description="Rolling sample of feature rows.")
    min_fit_rows: int = Field(
        5000, ge=50, description="Rows before a first fit: a sample of more than a few minutes."
    )
    refit_interval_s: float = Field(600.0, gt=0, description="Wall seconds between refits.")
    n_estimators: int = Field(100, ge=10, le=1000)
    max_samples: int = Field(256, ge=16)
    contamination: float = Field(
        0.05, gt=0, lt=0.5, description="Share of training rows the forest calls unusual."
    )
    min_feature_z: float = Field(
        6.0,
        gt=0,
        description="And one feature this many robust z-scores from the sample's median, "
        "beyond the sample's 99.9 % quantile.",
    )
    top_features: int = Field(3, ge=1, le=10, description="Features named in the alert.")
    seed: int = 0


class IncidentConfig(_Strict):
    """One alert per client and incident."""

    resolve_after_s: float = Field(
        300.0, gt=0, description="Quiet event time (no trigger) after which an incident resolves."
    )
    cooldown_s: float = Field(
        600.0,
        ge=0,
        description="After resolving, the same client and kind stay quiet this long: long "
        "enough to stop flapping, short enough not to hide the next attack.",
    )
    model_cooldown_s: float = Field(
        86_400.0, ge=0, description="Cooldown of anomalous_client alerts (lower severity)."
    )


class AccessConfig(_Strict):
    """Suspicious access patterns in the RUM stream (``access:`` in the config)."""

    enabled: bool = True
    topic: str = "apiwatch.access"
    allow: AllowListConfig = AllowListConfig()
    classify: ClassifyConfig = ClassifyConfig()
    fold: FoldConfig = FoldConfig()
    brute_force: BruteForceConfig = BruteForceConfig()
    stuffing: StuffingConfig = StuffingConfig()
    enumeration: EnumerationConfig = EnumerationConfig()
    scraping: ScrapingConfig = ScrapingConfig()
    probing: ProbingConfig = ProbingConfig()
    token_sharing: TokenSharingConfig = TokenSharingConfig()
    travel: TravelConfig = TravelConfig()
    model: ModelConfig = ModelConfig()
    incidents: IncidentConfig = IncidentConfig()
