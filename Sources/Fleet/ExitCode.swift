/// `govuk-fab` exit statuses; documented in `docs/exit-codes.md`.
public enum FleetExitCode: Int32, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Every task succeeded on every host.
    case success = 0
    /// At least one host failed (non-zero exit, signal, timeout, connection error).
    case hostFailed = 1
    /// Bad command line or inventory.
    case usage = 2
    /// Confirmation declined, or needed without a terminal to ask on and no `--yes`.
    case refused = 3
    /// Selectors matched no host.
    case noHostsMatched = 4
    /// Interrupted (SIGINT); in-flight hosts were stopped.
    case interrupted = 130

    /// The run's code from per-host outcomes: interrupted wins, then any failure.
    public static func forRun(outcomes: some Sequence<HostOutcome>, interrupted: Bool) -> FleetExitCode {
        if interrupted { return .interrupted }
        return outcomes.contains { $0.isFailure } ? .hostFailed : .success
    }

    /// Short name used in JSON and the audit log (`host_failed`).
    public var name: String {
        switch self {
        case .success: return "success"
        case .hostFailed: return "host_failed"
        case .usage: return "usage"
        case .refused: return "refused"
        case .noHostsMatched: return "no_hosts_matched"
        case .interrupted: return "interrupted"
        }
    }

    public var description: String { "\(rawValue) (\(name))" }
}
