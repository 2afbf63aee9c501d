import FuzzSupport
import Yams

@testable import Fleet

/// Inventory files. The text after a form feed (if any) is what an `include_hosts:` reads, so
/// includes are fuzzed without touching the disk. Checks: the same text always gives the same
/// inventory or the same located error; a loaded inventory has unique host names and
/// addresses; and the nesting scan that guards Yams never under-estimates the real depth.
@main
enum FuzzInventory {
    static let file = "/fuzz/inventories/fuzz.yml"

    static func main() {
        runFuzzer { data, size in
            FuzzInventory.testOneInput(fuzzInput(data, size))
            return 0
        }
    }

    static func testOneInput(_ input: UnsafeRawBufferPointer) {
        let whole = String(decoding: input, as: UTF8.self)
        let parts = whole.split(separator: "\u{0C}", maxSplits: 1, omittingEmptySubsequences: false)
        let text = String(parts[0])
        let included = parts.count > 1 ? String(parts[1]) : nil
        let readInclude: (String) throws(InventoryError) -> String = { path throws(InventoryError) in
            guard let included else {
                throw InventoryError(.unreadable(reason: "no such file"), at: SourceLocation(file: path))
            }
            return included
        }

        let first = Result { () throws(InventoryError) in
            try InventoryParser.parse(text, file: file, defaultName: "fuzz", readInclude: readInclude)
        }
        let second = Result { () throws(InventoryError) in
            try InventoryParser.parse(text, file: file, defaultName: "fuzz", readInclude: readInclude)
        }
        invariant(first == second, "the same text parsed two ways")
        switch first {
        case .success(let inventory):
            let names = inventory.hosts.map { $0.name.lowercased() }
            invariant(Set(names).count == names.count, "duplicate host names loaded: \(names)")
            let addresses = inventory.hosts.map { "\($0.address.lowercased())|\($0.port ?? inventory.ssh.port)" }
            invariant(Set(addresses).count == addresses.count, "duplicate addresses loaded: \(addresses)")
            for host in inventory.hosts {
                invariant(!host.name.isEmpty && !host.address.isEmpty, "host with an empty name or address")
            }
        case .failure(let error):
            let description = error.description
            invariant(
                !error.location.file.isEmpty && description.hasPrefix(error.location.file),
                "error not located at a file: \(description)")
        }
        checkNestingBound(text)
    }

    /// With a small limit, a text the scan lets through must really nest no deeper than it.
    /// Aliases are left out: `*a` repeats an anchored node, so depth can grow without brackets.
    static func checkNestingBound(_ text: String) {
        let limit = 6
        guard YAMLNestingLimit.firstViolation(in: text, limit: limit) == nil, !text.contains("*"),
            let node = try? Yams.compose(yaml: text)
        else { return }
        let depth = collectionDepth(node)
        invariant(depth <= limit, "scan passed the text at limit \(limit) but it nests \(depth) deep")
    }

    static func collectionDepth(_ node: Node) -> Int {
        switch node {
        case .scalar: return 0
        case .sequence(let sequence): return 1 + (sequence.map(collectionDepth).max() ?? 0)
        case .mapping(let mapping):
            return 1 + (mapping.map { max(collectionDepth($0.key), collectionDepth($0.value)) }.max() ?? 0)
        }
    }
}
