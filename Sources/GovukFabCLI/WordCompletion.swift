import Fleet
import FleetTasks
import Foundation

/// Shell completion of the positional words (`--generate-completion-script bash|zsh|fish`):
/// the environment first (inventories on the search path), then selectors with the names of that
/// inventory's classes and task names. Reads files only; never connects, never prints warnings.
struct WordCompletion {
    /// Options that take a value, so the word after them is not a positional word.
    static let optionsWithValues: Set<String> = [
        "-H", "--hosts", "-R", "--roles", "-x", "--exclude-hosts", "-z", "--pool-size", "-t", "--timeout",
        "--connect-timeout", "-T", "--command-timeout", "-n", "--connection-attempts", "--keepalive", "--set",
        "-u", "--user", "-i", "--port", "-g", "--gateway", "--ssh-config-path", "--hide", "--show", "-F",
        "--list-format", "-d", "--display", "--inventory", "--config-dir",
    ]

    static let selectorKinds = ["puppet_class", "class", "node_type", "application"]

    var environment: [String: String]

    /// Candidates for `words[index]` (words[0] is the command), filtered by `prefix`.
    ///
    /// bash splits `puppet_class:g` at the colon (`COMP_WORDBREAKS`) into `puppet_class`, `:`, `g`
    /// and replaces only `g`, so there the names come bare; zsh and fish pass the whole word.
    func candidates(words: [String], index: Int, prefix: String) -> [String] {
        let before = Array(words.prefix(index).dropFirst())
        let positional = Self.positionalWords(before)
        let search = ConfigurationSearch(
            configDirectory: Self.value(of: "--config-dir", in: before), environment: environment)
        guard let environmentName = positional.first else {
            return filter(
                InventoryLoader.availableEnvironments(searchPaths: search.inventoryDirectories.map(\.path)), prefix)
        }
        let inventory = loadInventory(environmentName, search: search, file: Self.value(of: "--inventory", in: before))
        // bash: `kind` `:` `partial` (the cursor on `partial`, or on `:` itself).
        if prefix == ":", let kind = before.last, Self.selectorKinds.contains(kind) {
            return names(of: kind, in: inventory)
        }
        if before.last == ":", before.count >= 2, Self.selectorKinds.contains(before[before.count - 2]) {
            return filter(names(of: before[before.count - 2], in: inventory), prefix)
        }
        // zsh, fish: `kind:partial` as one word.
        if let colon = prefix.firstIndex(of: ":"), Self.selectorKinds.contains(String(prefix[..<colon])) {
            let kind = String(prefix[..<colon])
            return filter(names(of: kind, in: inventory).map { kind + ":" + $0 }, prefix)
        }
        let registry = try? TaskRegistry.standard(playbookDirectories: search.playbookDirectories.map(\.path))
        let tasks = (registry?.descriptors.map(\.name) ?? []) + ["hosts", "classes", "help"]
        return filter(Self.selectorKinds.map { $0 + ":" } + ["all"] + tasks.sorted(), prefix)
    }

    private func loadInventory(_ name: String, search: ConfigurationSearch, file: String?) -> Inventory? {
        if let file { return try? InventoryLoader.load(file: file, defaultName: name) }
        return try? InventoryLoader.load(environment: name, searchPaths: search.inventoryDirectories.map(\.path))
    }

    private func names(of kind: String, in inventory: Inventory?) -> [String] {
        guard let inventory else { return [] }
        let summary = inventory.classSummary()
        switch kind {
        case "puppet_class": return summary.puppetClasses.map(\.name)
        case "class": return summary.nodeClasses.map(\.name)
        case "node_type": return Set(inventory.hosts.compactMap(\.nodeType)).sorted()
        default:
            let apps = summary.puppetClasses.map(\.name).filter { $0.hasPrefix("govuk::apps::") }
            return apps.map { String($0.dropFirst("govuk::apps::".count)) }
        }
    }

    private func filter(_ names: [String], _ prefix: String) -> [String] {
        prefix.isEmpty ? names : names.filter { $0.hasPrefix(prefix) }
    }

    /// The words that are not options or option values.
    static func positionalWords(_ words: [String]) -> [String] {
        var positional: [String] = []
        var index = 0
        while index < words.count {
            let word = words[index]
            if word == "--" { break }
            if word.hasPrefix("-") && word.count > 1 {
                if optionsWithValues.contains(word) { index += 1 }
            } else if word != ":" { // bash's separate `:` of `kind:name`
                positional.append(word)
            }
            index += 1
        }
        return positional
    }

    /// The value given to `option` (`--opt VALUE` or `--opt=VALUE`), if any.
    static func value(of option: String, in words: [String]) -> String? {
        for (index, word) in words.enumerated() {
            if word == option, index + 1 < words.count { return words[index + 1] }
            if word.hasPrefix(option + "=") { return String(word.dropFirst(option.count + 1)) }
        }
        return nil
    }
}
