/// Whether a run may start, must ask first, or must be refused (exit 3).
public enum ConfirmationDecision: Sendable, Hashable {
    /// Run without asking.
    case proceed
    /// Ask on the terminal; run only if the answer is `yes`.
    case ask(prompt: String)
    /// Do not run; the reason says how to proceed.
    case refuse(reason: String)
}

/// The confirmation rule for environments with `confirm_changes: true`.
public enum ConfirmationPolicy {
    /// Decides whether `plan` needs confirmation.
    ///
    /// - Parameters:
    ///   - changesHosts: whether any task in the plan can change hosts (read-only tasks such
    ///     as `hosts`, `classes` or a dry run never need confirmation); the task layer decides.
    ///   - assumeYes: `--yes` was given.
    ///   - canPrompt: standard input and output are a terminal.
    public static func decide(
        inventory: Inventory, plan: CommandPlan, changesHosts: Bool, assumeYes: Bool, canPrompt: Bool
    ) -> ConfirmationDecision {
        guard inventory.confirmChanges, changesHosts, !assumeYes else { return .proceed }
        guard canPrompt else {
            return .refuse(
                reason: "\(inventory.name) requires confirmation for changes;"
                    + " no terminal to ask on, so pass --yes to run without asking")
        }
        let hosts = plan.allHosts.map(\.name)
        let shown =
            hosts.count <= 10
            ? hosts.joined(separator: ", ")
            : hosts.prefix(10).joined(separator: ", ") + " and \(hosts.count - 10) more"
        let tasks = plan.steps.map(\.task.raw).joined(separator: " ")
        return .ask(
            prompt: "About to run \(tasks) on \(hosts.count) \(inventory.name) host"
                + "\(hosts.count == 1 ? "" : "s") (\(shown)). Type 'yes' to continue: ")
    }
}
