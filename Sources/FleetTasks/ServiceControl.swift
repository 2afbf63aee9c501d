import Fleet
import SSHTransport

/// Actions `app.*` tasks perform.
public enum ServiceAction: String, Sendable, CaseIterable {
    case start, stop, restart, reload, status

    /// Whether the action changes the host (`status` only reads).
    public var changesHosts: Bool { self != .status }
}

/// A service name that is safe to put in a shell command: validated once, so
/// no task ever pastes user text raw into a remote shell.
public struct ServiceName: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String

    /// Unit and job names on Debian/Ubuntu use these characters only.
    public init(validating name: String) throws(ServiceNameError) {
        guard !name.isEmpty, name.count <= 128 else { throw .invalid(name) }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@-")
        guard name.allSatisfy({ allowed.contains($0) }), name.first != "-", name.first != "." else {
            throw .invalid(name)
        }
        rawValue = name
    }

    public var description: String { rawValue }
}

/// Why a service name was refused.
public enum ServiceNameError: Error, Sendable, CustomStringConvertible, Hashable {
    /// The name has characters no service manager allows.
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let name):
            return
                "invalid service name '\(name)': use letters, digits and _ . @ - only (for example app.start:goreplay)"
        }
    }
}

/// Paths of govuk-fab's supervisor mode: a service is a directory holding an
/// executable `run` script that execs the daemon (as in runit), so the
/// daemon's pid is the one recorded and its command name is the daemon's own.
public enum SupervisorLayout {
    public static let servicesDirectory = "/etc/govuk-fab/services"
    public static let runDirectory = "/run/govuk-fab"
    public static let logDirectory = "/var/log/govuk-fab"
}

/// Exit status of a resolved service command when no candidate name exists
/// on the host (LSB "program is not installed").
public let serviceNotInstalledStatus: Int32 = 5

/// Builds the remote shell commands for a service manager. Everything a
/// command interpolates is a validated `ServiceName` or a quoted constant.
public struct ServiceControl: Sendable {
    public var manager: ServiceManager

    public init(manager: ServiceManager) { self.manager = manager }

    /// A command that exits 0 when `name` is defined on the host.
    public func existsCommand(_ name: ServiceName) -> String {
        let n = name.rawValue
        switch manager {
        case .systemd:
            // `systemctl cat` fails for units that have no file.
            return "systemctl cat -- \(n).service >/dev/null 2>&1"
        case .upstart:
            return "test -f /etc/init/\(n).conf"
        case .sysv:
            return "test -x /etc/init.d/\(n)"
        case .supervisor:
            return "test -x \(SupervisorLayout.servicesDirectory)/\(n)/run"
        }
    }

    /// A command that exits 0 when the service is running, 3 when stopped
    /// (LSB status codes), and prints one line of state.
    public func statusCommand(_ name: ServiceName) -> String {
        command(.status, name)
    }

    /// The command for `action` on one known name; run it with sudo (except
    /// `status`). Starting a running service and stopping a stopped one succeed.
    public func command(_ action: ServiceAction, _ name: ServiceName) -> String {
        let n = name.rawValue
        switch manager {
        case .systemd:
            switch action {
            case .status: return "systemctl status --no-pager --lines=0 -- \(n).service"
            default: return "systemctl \(action.rawValue) -- \(n).service"
            }
        case .upstart:
            // upstart's `restart` keeps the old job config (puppet-gor notes
            // this), so restart is stop-then-start.
            switch action {
            case .status:
                return "s=$(initctl status \(n)) || exit 4; echo \"$s\"; "
                    + "case \"$s\" in *start/running*) exit 0;; *) exit 3;; esac"
            case .restart: return "{ initctl stop \(n) || true; } && initctl start \(n)"
            case .reload: return "initctl reload \(n)"
            case .start:
                // initctl start fails when already running; starting a running
                // service is success for an operator.
                return "if initctl status \(n) | grep -q start/running; then echo \"\(n) already running\"; "
                    + "else initctl start \(n); fi"
            case .stop:
                return "if initctl status \(n) | grep -q stop/waiting; then echo \"\(n) not running\"; "
                    + "else initctl stop \(n); fi"
            }
        case .sysv:
            return "service \(n) \(action.rawValue)"
        case .supervisor:
            return Self.supervisorScript(action, n)
        }
    }

    /// One remote command that acts on the first of `candidates` defined on
    /// the host (e.g. `goreplay`, then the legacy upstart job `gor`), telling
    /// the operator which name it used when it is not the first. Exits
    /// ``serviceNotInstalledStatus`` with a message when none exists.
    public func resolvedCommand(_ action: ServiceAction, candidates: [ServiceName]) -> String {
        guard let first = candidates.first else { return "echo 'no service name given' >&2; exit 2" }
        var script = ""
        for (index, name) in candidates.enumerated() {
            let keyword = index == 0 ? "if" : "elif"
            let note = name == first ? "" : "echo \(shellQuote("\(first) is service '\(name)' on this host")); "
            script += "\(keyword) \(existsCommand(name)); then \(note)( \(command(action, name)) ); "
        }
        let tried = candidates.map(\.rawValue).joined(separator: ", ")
        let missing = "no \(manager) service named \(tried) on this host"
        script += "else echo \(shellQuote(missing)) >&2; exit \(serviceNotInstalledStatus); fi"
        return script
    }

    private static func supervisorScript(_ action: ServiceAction, _ n: String) -> String {
        let dir = "\(SupervisorLayout.servicesDirectory)/\(n)"
        let pidFile = "\(SupervisorLayout.runDirectory)/\(n).pid"
        let log = "\(SupervisorLayout.logDirectory)/\(n).log"
        // `running` succeeds when the recorded pid is alive and is not a zombie.
        // `setsid -f` detaches the daemon completely (a shell that started it
        // with `&` may wait for it, holding the SSH channel open); the small
        // shell records its own pid and execs `run`, which execs the daemon,
        // so the pid recorded is the daemon's.
        let running = """
            running() { [ -f \(pidFile) ] && p=$(cat \(pidFile)) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null \
            && ! grep -q '^State:.*Z' /proc/"$p"/status 2>/dev/null; }
            """
        let start = """
            if running; then echo "\(n) already running (pid $p)"; else \
            mkdir -p \(SupervisorLayout.runDirectory) \(SupervisorLayout.logDirectory) && rm -f \(pidFile) && \
            (cd / && setsid -f /bin/sh -c 'echo $$ >\(pidFile); exec \(dir)/run' </dev/null >>\(log) 2>&1) && \
            i=0; while [ ! -s \(pidFile) ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done; \
            sleep 0.2; if running; then echo "\(n) started (pid $(cat \(pidFile)))"; \
            else echo "\(n) exited at once; last log lines:" >&2; tail -n 5 \(log) >&2; exit 1; fi; fi
            """
        let stop = """
            if running; then kill -TERM "$p"; i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do \
            sleep 0.1; i=$((i+1)); done; kill -0 "$p" 2>/dev/null && kill -KILL "$p"; rm -f \(pidFile); \
            echo "\(n) stopped"; else rm -f \(pidFile); echo "\(n) not running"; fi
            """
        let exists =
            "[ -x \(dir)/run ] || { echo \"no such service: \(n) (no \(dir)/run)\" >&2; exit \(serviceNotInstalledStatus); }"
        let body: String
        switch action {
        case .start: body = start
        case .stop: body = stop
        case .restart: body = "\(stop); \(start)"
        case .reload:
            body =
                "if running; then kill -HUP \"$p\" && echo \"\(n) reloaded\"; else echo \"\(n) not running\" >&2; exit 7; fi"
        case .status:
            body =
                "if running; then echo \"\(n) start/running, process $p\"; else echo \"\(n) stop/waiting\"; exit 3; fi"
        }
        return "\(exists); \(running); \(body)"
    }
}
