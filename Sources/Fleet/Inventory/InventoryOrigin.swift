import Foundation

/// Which inventory file a run used and how it was chosen, for the run header and the audit log:
/// the file decides which hosts are touched, so it is never left implicit.
public struct InventoryOrigin: Sendable, Hashable, CustomStringConvertible {
    /// How the file was chosen; the raw value is what JSON and the audit log record.
    public enum Source: String, Sendable, Hashable, CaseIterable {
        /// `--inventory FILE`.
        case inventoryOption = "--inventory"
        /// `--config-dir DIR` (`DIR/inventories`).
        case configDirectory = "--config-dir"
        /// `$GOVUK_FAB_INVENTORY_DIR`.
        case environmentVariable = "GOVUK_FAB_INVENTORY_DIR"
        /// The checkout the binary was built in.
        case checkout
        /// The installed share directory (`PREFIX/share/govuk-fab`).
        case installed
    }

    /// Absolute path of the file.
    public var path: String
    public var source: Source

    public init(path: String, source: Source) {
        self.path = path
        self.source = source
    }

    /// `/srv/govuk-fab/inventories/production.yml (checkout)`.
    public var description: String { "\(path) (\(source.rawValue))" }
}
