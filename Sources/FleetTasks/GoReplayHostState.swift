import Fleet
import Foundation
import SSHTransport

/// The command name GoReplay runs under (the upstart job `gor` execs
/// `/usr/local/bin/goreplay`), as `check_procs -C` and `pgrep -x` match it.
public let goReplayProcessName = "goreplay"

/// The logical service name, resolved per host through the inventory's aliases.
public let goReplayServiceName = "goreplay"

/// The data-sync marker as read on a host.
public enum MarkerState: Sendable, Hashable {
    /// No file.
    case missing
    /// A file; `content` is at most its first 256 bytes.
    case present(content: String, owner: String, mode: String)

    /// Whether the marker means "no data sync": present and, as `envdir` reads
    /// it (first line, trailing blanks removed), empty. The nightly cron's
    /// `echo '' > FILE` leaves a single newline, which counts as empty.
    public var isEmpty: Bool {
        guard case .present(let content, _, _) = self else { return false }
        return Self.envdirValue(content).isEmpty
    }

    /// The value Puppet sees, for messages: `'true'`.
    public var shownValue: String {
        guard case .present(let content, _, _) = self else { return "missing" }
        return "'\(Self.envdirValue(content))'"
    }

    static func envdirValue(_ content: String) -> String {
        let firstLine = content.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        var value = Substring(firstLine)
        while let last = value.last, last == " " || last == "\t" { value = value.dropLast() }
        return String(value)
    }
}

/// What `recover-goreplay` and `check-goreplay` read from one host in one
/// read-only remote command.
public struct GoReplayHostState: Sendable, Hashable {
    public var marker: MarkerState
    /// Whether the marker's directory exists (a missing marker cannot be created otherwise).
    public var markerDirectoryExists: Bool
    /// The service name defined on the host (`goreplay` or `gor`), if any.
    public var service: ServiceName?
    /// Whether that service's status says running.
    public var serviceRunning: Bool
    /// Processes whose command name is `goreplay`, counted as check_procs does.
    public var processCount: Int

    /// Parses the `key=value` lines of ``GoReplayScripts/readState(marker:candidates:manager:)``.
    public init(parsing output: String) throws(GoReplayStateError) {
        var values: [String: String] = [:]
        for line in output.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        guard let markerValue = values["marker"], let procsText = values["procs"],
            let procs = Int(procsText.trimmingCharacters(in: .whitespaces))
        else {
            throw GoReplayStateError(output: output)
        }
        if markerValue == "present" {
            let data = Data(base64Encoded: values["marker_content"] ?? "") ?? Data()
            marker = .present(
                content: String(decoding: data, as: UTF8.self),
                owner: values["marker_owner"] ?? "?", mode: values["marker_mode"] ?? "?")
        } else {
            marker = .missing
        }
        markerDirectoryExists = values["marker_dir"] != "missing"
        service = (values["service"]).flatMap { $0.isEmpty ? nil : try? ServiceName(validating: $0) }
        serviceRunning = values["service_status"] == "0"
        processCount = procs
    }

    /// `marker 'true', service gor stopped, 0 processes`.
    public var summary: String {
        let markerText: String
        switch marker {
        case .missing: markerText = "marker missing"
        case .present: markerText = isMarkerEmptyText
        }
        let serviceText =
            service.map { "service \($0) \(serviceRunning ? "running" : "stopped")" } ?? "no goreplay service"
        return "\(markerText), \(serviceText), \(processCountText(processCount))"
    }

    private var isMarkerEmptyText: String {
        marker.isEmpty ? "marker empty" : "marker \(marker.shownValue)"
    }
}

/// `1 process`, `0 processes`.
func processCountText(_ count: Int) -> String {
    "\(count) process" + (count == 1 ? "" : "es")
}

/// The state script printed something unexpected (e.g. a shell without `ps`).
public struct GoReplayStateError: Error, Sendable, CustomStringConvertible {
    public var output: String
    public var description: String {
        let first = output.split(separator: "\n").first.map(String.init) ?? "no output"
        return "could not read goreplay state from the host (got: \(first))"
    }
}

/// Remote shell scripts for GoReplay hosts. Every interpolated value is a
/// validated service name, a number, or quoted with `shellQuote`.
public enum GoReplayScripts {
    /// Counts processes by command name as `check_procs -C NAME` does: every
    /// process in `ps`, zombies included, command name (comm) equal to NAME.
    public static func countProcesses(_ name: String = goReplayProcessName) -> String {
        "ps -e -o comm= | grep -cxF -- \(shellQuote(name))"
    }

    /// A read-only script printing `key=value` lines: marker presence, owner,
    /// mode and content (base64), the first service candidate that exists and
    /// its status, and the goreplay process count.
    public static func readState(marker: String, candidates: [ServiceName], manager: ServiceManager) -> String {
        let control = ServiceControl(manager: manager)
        var script =
            "m=\(shellQuote(marker)); "
            + "if [ -e \"$m\" ]; then echo marker=present; "
            + "echo \"marker_owner=$(stat -c %U:%G -- \"$m\")\"; echo \"marker_mode=$(stat -c %a -- \"$m\")\"; "
            + "echo \"marker_content=$(head -c 256 -- \"$m\" | base64 -w0)\"; else echo marker=missing; fi; "
            + "[ -d \"$(dirname -- \"$m\")\" ] || echo marker_dir=missing; "
        for (index, name) in candidates.enumerated() {
            script += index == 0 ? "if " : "elif "
            script +=
                "\(control.existsCommand(name)); then echo service=\(name); "
                + "( \(control.statusCommand(name)) ) >/dev/null 2>&1; echo \"service_status=$?\"; "
        }
        if !candidates.isEmpty { script += "else echo service=; fi; " }
        script += "echo \"procs=$(\(countProcesses()))\""
        return script
    }

    /// Writes `content` to `marker` atomically: a temporary file in the same
    /// directory gets the old file's owner and mode (`--reference`), or for a
    /// new marker the directory's owner and mode 0644, then `mv -f` replaces
    /// the marker in one rename.
    public static func writeMarker(_ marker: String, content: String) -> String {
        writeFileAtomically(marker, content: content, mode: nil)
    }

    /// Writes `content` to `path` atomically (see ``writeMarker(_:content:)``);
    /// a `mode` (octal, validated by the caller) is applied instead of keeping the old one.
    public static func writeFileAtomically(_ path: String, content: String, mode: String?) -> String {
        let keepMode = mode.map { "chmod \($0) -- \"$t\"" } ?? "chmod --reference=\"$m\" -- \"$t\""
        let newMode = mode ?? "0644"
        return "m=\(shellQuote(path)); d=$(dirname -- \"$m\"); "
            + "[ -d \"$d\" ] || { echo \"directory $d does not exist\" >&2; exit 1; }; "
            + "t=$(mktemp -- \"$d/.govuk-fab.XXXXXX\") || exit 1; "
            + "{ printf '%s' \(shellQuote(content)) >\"$t\" && "
            + "if [ -e \"$m\" ]; then chown --reference=\"$m\" -- \"$t\" && \(keepMode); "
            + "else chown \"$(stat -c %u:%g -- \"$d\")\" -- \"$t\" && chmod \(newMode) -- \"$t\"; fi && "
            + "mv -f -- \"$t\" \"$m\"; } || { rm -f -- \"$t\"; echo \"could not write $m\" >&2; exit 1; }"
    }

    /// Polls (in one remote loop, every 0.2 s, at most `timeout`) until the
    /// number of `goreplay` processes is at least 1 (`atLeastOne`) or 0, then
    /// prints `procs=N` and exits 0 if the wait was met.
    public static func waitForProcesses(
        atLeastOne: Bool, timeout: Duration, name: String = goReplayProcessName
    ) -> String {
        let rounds = max(1, Int(DurationText.seconds(timeout) / 0.2))
        let done = atLeastOne ? "[ \"$n\" -ge 1 ]" : "[ \"$n\" -eq 0 ]"
        return "i=0; while :; do n=$(\(countProcesses(name))); if \(done) || [ $i -ge \(rounds) ]; then break; fi; "
            + "sleep 0.2; i=$((i+1)); done; echo \"procs=$n\"; \(done)"
    }

    /// The last `procs=N` line of a script's output.
    static func processCount(in output: String) -> Int? {
        output.split(separator: "\n").reversed().lazy
            .compactMap { $0.hasPrefix("procs=") ? Int($0.dropFirst(6)) : nil }.first
    }
}

/// The names to try for the logical service `logical` (aliases from the
/// inventory, else the name itself), each validated.
func serviceCandidates(_ logical: String, in inventory: Inventory) throws(ServiceNameError) -> [ServiceName] {
    var names: [ServiceName] = []
    for candidate in inventory.services.candidates(for: logical) {
        names.append(try ServiceName(validating: candidate))
    }
    return names
}

/// The last non-empty line of a command's stderr, else stdout, for messages.
func lastLine(of result: RemoteResult) -> String? {
    for text in [result.stderr, result.stdout] {
        if let line = text.split(separator: "\n").last(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            return String(line)
        }
    }
    return nil
}
