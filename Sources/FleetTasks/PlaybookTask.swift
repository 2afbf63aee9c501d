import Fleet
import Foundation
import SSHTransport

/// Runs a validated playbook on one host, step by step (one remote command
/// per step); the first failing step ends the host with its file line.
public struct PlaybookTask: FleetTask {
    public let playbook: Playbook
    public let invocation: TaskInvocation

    public init(playbook: Playbook, invocation: TaskInvocation) {
        self.playbook = playbook
        self.invocation = invocation
    }

    public var changesHosts: Bool { playbook.changes }

    public func preflight(_ context: RunContext) throws(TaskRefusal) {
        if playbook.respectDataSyncWindow { try refuseInsideDataSyncWindow(task: playbook.name, context) }
    }

    func builtInValues(_ host: Fleet.Host, _ inventory: Inventory) -> [String: String] {
        ["host": host.name, "environment": inventory.name, "marker_path": inventory.dataSync.marker]
    }

    /// The remote command of a step, or nil for steps that run nothing.
    func command(_ step: PlaybookStep, host: Fleet.Host, inventory: Inventory, values: [String: String]) throws(ServiceNameError) -> (String, sudo: Bool)? {
        let control = ServiceControl(manager: inventory.serviceManager(for: host))
        switch step.action {
        case .run(let command): return (command, false)
        case .sudo(let command): return (command, true)
        case .service(let action, let logical, let name):
            let candidates = try serviceCandidates(logical, in: inventory)
            var script = "( \(control.resolvedCommand(action, candidates: candidates)) )"
            if name != nil {
                // Record the state after the action and the name it resolved to.
                script += "; rc=$?; [ $rc -eq 0 ] || [ $rc -eq 3 -a \(shellQuote(action.rawValue)) = status ] || exit $rc; "
                for (index, candidate) in candidates.enumerated() {
                    script += (index == 0 ? "if " : "elif ") + "\(control.existsCommand(candidate)); then "
                        + "echo service_name=\(candidate); ( \(control.statusCommand(candidate)) ) >/dev/null 2>&1 "
                        + "&& echo service_state=running || echo service_state=stopped; "
                }
                script += "fi"
            }
            return (script, action != .status)
        case .ensureFile(let path, let content, let mode):
            let target = path.render(values)
            let write = GoReplayScripts.writeFileAtomically(target, content: content, mode: mode)
            let same = "[ -f \(shellQuote(target)) ] && printf '%s' \(shellQuote(content)) | cmp -s - \(shellQuote(target))"
                + (mode.map { " && [ \"$(stat -c %a -- \(shellQuote(target)))\" = \(shellQuote(String(Int($0, radix: 8).map { String($0, radix: 8) } ?? $0))) ]" } ?? "")
            return ("if \(same); then echo unchanged; else ( \(write) ) && echo changed; fi", true)
        case .readFile(let path, _):
            let target = shellQuote(path.render(values))
            return ("if [ -e \(target) ]; then echo exists; cat -- \(target); else echo missing; fi", true)
        case .readCommand(let command, _, let sudo):
            return (command, sudo)
        case .waitForProcess(let name, let timeout, let running):
            return (GoReplayScripts.waitForProcesses(atLeastOne: running, timeout: timeout, name: name), false)
        case .message:
            return nil
        }
    }

    public func plannedCommands(on host: Fleet.Host, context: RunContext) -> [String] {
        let values = builtInValues(host, context.inventory)
        return playbook.steps.compactMap { step in
            guard let (text, sudo) = (try? command(step, host: host, inventory: context.inventory, values: values)) ?? nil else {
                return nil
            }
            let remote = remoteCommand(text, sudo: sudo, on: host, in: context.inventory)
            return step.condition.map { "[when \($0.text)] \(remote)" } ?? remote
        }
    }

    public func run(on host: HostContext) async throws -> TaskOutcome {
        var values = builtInValues(host.host, host.inventory)
        var messages: [String] = []
        var changed = false
        for (index, step) in playbook.steps.enumerated() {
            if let condition = step.condition, !condition.holds(values) { continue }
            let where_ = "step \(index + 1) (\((playbook.path as NSString).lastPathComponent):\(step.line))"
            if case .message(let text) = step.action {
                messages.append(text.render(values))
                continue
            }
            guard let (text, sudo) = try command(step, host: host.host, inventory: host.inventory, values: values) else { continue }
            if host.run.dryRun {
                messages.append("would run \(where_): \(text)")
                continue
            }
            let echo: Bool
            switch step.action {
            case .run, .sudo: echo = true
            default: echo = false
            }
            let result = try await host.execute(text, sudo: sudo, echo: echo)
            let output = result.stdout.replacingOccurrences(of: #"\n+$"#, with: "", options: .regularExpression)
            switch step.action {
            case .waitForProcess(let name, let timeout, let running):
                let count = GoReplayScripts.processCount(in: result.stdout)
                values["procs"] = count.map(String.init) ?? ""
                guard result.succeeded else {
                    return fail(result, host, messages, changed, "\(where_): \(name): \(count.map(processCountText) ?? "?") "
                        + "after \(DurationText.format(timeout)), wanted \(running ? "at least 1" : "none")")
                }
                continue
            case .readFile(_, let name):
                guard result.succeeded else { return fail(result, host, messages, changed, "\(where_): could not read") }
                let exists = output.hasPrefix("exists")
                values[name + "_exists"] = exists ? "true" : ""
                values[name] = exists ? String(result.stdout.dropFirst("exists\n".count))
                    .replacingOccurrences(of: #"\n+$"#, with: "", options: .regularExpression) : ""
                continue
            case .readCommand(_, let name, _):
                values[name] = output
            case .service(_, _, let name):
                if let name {
                    for line in output.split(separator: "\n") {
                        if line.hasPrefix("service_name=") { values[name + "_name"] = String(line.dropFirst(13)) }
                        if line.hasPrefix("service_state=") { values[name] = String(line.dropFirst(14)) }
                    }
                }
                if case .service(let action, _, _) = step.action, action == .status, result.exitStatus == 3 { continue }
            default:
                break
            }
            guard result.succeeded else {
                return fail(result, host, messages, changed, "\(where_) failed: \(lastLine(of: result) ?? "exit \(result.exitStatus)")")
            }
            switch step.action {
            case .run, .sudo: changed = true
            case .service(let action, _, _): changed = changed || action.changesHosts
            case .ensureFile: changed = changed || output.hasSuffix("changed")
            default: break
            }
        }
        return .ok(messages.isEmpty ? (host.run.dryRun ? "dry run: nothing changed" : "done") : messages.joined(separator: "; "),
                   changed: changed)
    }

    private func fail(_ result: RemoteResult, _ host: HostContext, _ messages: [String], _ changed: Bool,
                      _ reason: String) -> TaskOutcome {
        if result.sudoNeedsPassword { return outcome(of: result, on: host) }
        let text = (messages + [reason]).joined(separator: "; ")
        return TaskOutcome(outcome: result.succeeded ? .exited(status: 1) : result.outcome, message: text, changed: changed)
    }
}
