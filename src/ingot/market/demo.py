"""Demo trading centre: warehouses, the seeds' products, members (linked to demo enterprises where the registry has
them), clients, the reserve agency, market-role users, cash against custodian lines, receipts, and a few trades —
left in continuous trading so that the demo members can trade through the browser."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingot.core.auth import REGULATOR, User, create_user, principal_of
from ingot.core.timeutil import utcnow
from ingot.market import accounts, ledger, products, receipts, trading
from ingot.market.common import trading_day
from ingot.market.models import Product, TradingAccount
from ingot.registry.demo import DEMO_PASSWORD  # one password for every demo login

SESSIONS = ["09:00-11:30", "13:30-15:00", "21:00-23:00"]
OPENING_AUCTION = "08:55-09:00"

# code, zh, en, metal, price unit, units per lot, reference fen per unit, tick fen, band ppm, max lots,
# grade zh, grade en, quality spec, deliverable warehouses. Sources: 000 (indium), 002 四、(四) (V–Ti, rare earths),
# 001/003 (base metals).
PRODUCTS = (
    ("IN99995", "精铟", "Refined indium", "indium", "kg", 10, 150_000, 100, 80_000, 50,
     "精铟 In≥99.995%", "refined indium In >= 99.995 %", {"In_min_pct": "99.995"}, ["KM01"]),
    ("GE99999", "锗锭", "Germanium ingot", "germanium", "kg", 10, 900_000, 100, 80_000, 50,
     "区熔锗锭 Ge≥99.999%", "zone-refined germanium ingot Ge >= 99.999 %", {"Ge_min_pct": "99.999"}, ["KM01"]),
    ("V2O598", "五氧化二钒", "Vanadium pentoxide", "vanadium", "t", 1, 9_500_000, 1_000, 60_000, 100,
     "片状五氧化二钒 V2O5≥98%", "flake vanadium pentoxide V2O5 >= 98 %", {"V2O5_min_pct": "98"}, ["PZH01"]),
    ("FEV50", "钒铁", "Ferrovanadium", "vanadium", "t", 1, 10_500_000, 1_000, 60_000, 100,
     "钒铁 FeV50（V 48%–55%）", "ferrovanadium FeV50 (V 48-55 %)", {"V_min_pct": "48", "V_max_pct": "55"}, ["PZH01"]),
    ("VN16", "钒氮合金", "Vanadium-nitrogen alloy", "vanadium", "t", 1, 13_000_000, 1_000, 60_000, 100,
     "钒氮合金 VN16（V≥77%，N≥14%）", "vanadium-nitrogen alloy VN16 (V >= 77 %, N >= 14 %)",
     {"V_min_pct": "77", "N_min_pct": "14"}, ["PZH01"]),
    ("TISP0", "海绵钛", "Sponge titanium", "titanium", "t", 1, 5_000_000, 1_000, 60_000, 100,
     "海绵钛 0 级 Ti≥99.7%", "sponge titanium grade 0 Ti >= 99.7 %", {"Ti_min_pct": "99.7"}, ["PZH01"]),
    ("TIO2R", "钛白粉", "Titanium dioxide", "titanium", "t", 5, 1_600_000, 500, 60_000, 100,
     "金红石型钛白粉 TiO2≥92%", "rutile titanium dioxide TiO2 >= 92 %", {"TiO2_min_pct": "92"}, ["PZH01"]),
    ("TICON46", "钛精矿", "Titanium concentrate", "titanium", "t", 10, 220_000, 100, 60_000, 200,
     "钛精矿 TiO2≥46%", "titanium concentrate TiO2 >= 46 %", {"TiO2_min_pct": "46"}, ["PZH01"]),
    ("PRNDO", "氧化镨钕", "Praseodymium-neodymium oxide", "rare_earth", "t", 1, 45_000_000, 1_000, 80_000, 50,
     "氧化镨钕 TREO≥99%，Pr6O11+Nd2O3/TREO≥99.5%", "PrNd oxide TREO >= 99 %, (Pr6O11+Nd2O3)/TREO >= 99.5 %",
     {"TREO_min_pct": "99", "PrNd_min_pct": "99.5"}, ["BT01", "PZH01"]),
    ("PRNDM", "镨钕金属", "Praseodymium-neodymium metal", "rare_earth", "t", 1, 55_000_000, 1_000, 80_000, 50,
     "镨钕金属 TRE≥99%，Nd 75%±2%", "PrNd metal TRE >= 99 %, Nd 75 % ± 2", {"TRE_min_pct": "99"}, ["BT01"]),
    ("CU", "阴极铜", "Cathode copper", "copper", "t", 5, 7_000_000, 1_000, 50_000, 200,
     "阴极铜 Cu-CATH-1（Cu+Ag≥99.9935%）", "cathode copper Cu-CATH-1 (Cu+Ag >= 99.9935 %)", {"Cu_min_pct": "99.9935"},
     ["KM01", "BT01"]),
    ("AL", "铝锭", "Aluminium ingot", "aluminium", "t", 5, 1_900_000, 500, 50_000, 200,
     "重熔用铝锭 Al99.70", "aluminium ingot for remelting Al99.70", {"Al_min_pct": "99.70"}, ["BT01", "KM01"]),
    ("ZN", "锌锭", "Zinc ingot", "zinc", "t", 5, 2_300_000, 500, 50_000, 200,
     "锌锭 Zn99.995", "zinc ingot Zn99.995", {"Zn_min_pct": "99.995"}, ["KM01", "BT01"]),
    ("PB", "铅锭", "Lead ingot", "lead", "t", 5, 1_650_000, 500, 50_000, 200,
     "铅锭 Pb99.994", "lead ingot Pb99.994", {"Pb_min_pct": "99.994"}, ["KM01"]),
    ("SN", "锡锭", "Tin ingot", "tin", "t", 1, 23_000_000, 1_000, 60_000, 100,
     "锡锭 Sn99.90A", "tin ingot Sn99.90A", {"Sn_min_pct": "99.90"}, ["KM01"]),
)

WAREHOUSES = (
    ("KM01", "昆明有色金属交割库", "Kunming non-ferrous delivery warehouse", "530100"),
    ("PZH01", "攀枝花钒钛交割库", "Panzhihua vanadium-titanium delivery warehouse", "510400"),
    ("BT01", "包头稀土与铝交割库", "Baotou rare-earth and aluminium delivery warehouse", "150200"),
)

# code, name, kind, division, division prefix of an enterprise to link, products whose receipts it holds
MEMBERS = (
    ("M001", "云南锡铟冶炼（产业会员）", "industry", "530000", "53", ("SN", "IN99995", "GE99999", "CU", "ZN", "PB")),
    ("M002", "攀西钒钛（产业会员）", "industry", "510400", "51", ("V2O598", "FEV50", "VN16", "TISP0", "TIO2R", "TICON46")),
    ("M003", "包头稀土铝业（产业会员）", "industry", "150200", "15", ("PRNDO", "PRNDM", "AL")),
    ("M010", "西南金属综合服务（综合会员）", "comprehensive", "510100", None, ()),
    ("M011", "滇中金属贸易（交易商）", "trader", "530100", None, ()),
    ("R001", "省级金属储备机构", "reserve_agency", "530000", None, ()),
)


def _assay_for(spec: dict) -> dict:
    """An assay that meets the spec: each minimum exceeded by half the headroom to 100 % (at most 0.5 points)."""
    assay = {}
    for key, bound in spec.items():
        element, limit = key[:-8], Decimal(bound)
        if key.endswith("_min_pct"):
            assay[f"{element}_pct"] = str(limit + min(Decimal("0.5"), (100 - limit) / 2))
    for key, bound in spec.items():
        element, limit = key[:-8], Decimal(bound)
        if key.endswith("_max_pct") and Decimal(assay.get(f"{element}_pct", bound)) >= limit:
            assay[f"{element}_pct"] = str(limit - Decimal("0.5"))
    return assay


def _enterprise_in(session: Session, prefix: str | None) -> int | None:
    if prefix is None:
        return None
    from ingot.registry.models import Enterprise

    return session.scalar(select(Enterprise.id).where(Enterprise.division_code.startswith(prefix))
                          .order_by(Enterprise.id).limit(1))


def _user(session: Session, username: str, role: str, division: str | None = None) -> User:
    existing = session.scalar(select(User).where(User.username == username))
    if existing is not None:
        return existing
    return create_user(session, username=username, password=DEMO_PASSWORD, role=role,
                       display_name=username, division_code=division)


def load_market_demo(session: Session, now: datetime | None = None) -> list[tuple[str, str, str, str]]:
    """Load the demo (once; a second call only returns the users) and return (username, password, role, scope)."""
    users = [
        ("centre", DEMO_PASSWORD, "market_operator", "交易中心 / trading centre"),
        ("m001", DEMO_PASSWORD, "member", "M001 产业会员 industry member"),
        ("m002", DEMO_PASSWORD, "member", "M002 产业会员 industry member"),
        ("m003", DEMO_PASSWORD, "member", "M003 产业会员 industry member"),
        ("broker", DEMO_PASSWORD, "member", "M010 综合会员及其客户 comprehensive member and its clients"),
        ("client1", DEMO_PASSWORD, "member", "M010/C01 客户 client"),
        ("client2", DEMO_PASSWORD, "member", "M010/C02 客户 client"),
        ("trader", DEMO_PASSWORD, "member", "M011 交易商 trader"),
        ("reserve", DEMO_PASSWORD, "reserve_agency", "R001 储备机构 reserve agency"),
        ("wh_km", DEMO_PASSWORD, "warehouse", "KM01 仓库 warehouse"),
        ("wh_pzh", DEMO_PASSWORD, "warehouse", "PZH01 仓库 warehouse"),
        ("wh_bt", DEMO_PASSWORD, "warehouse", "BT01 仓库 warehouse"),
        ("market_watch", DEMO_PASSWORD, "regulator", "510000 四川省监管 Sichuan regulator"),
    ]
    if session.scalar(select(Product.id).where(Product.code == "IN99995")) is not None:
        return users
    now = now or utcnow()
    centre = _user(session, "centre", "market_operator")
    operator = principal_of(centre)
    warehouses = {code: accounts.create_warehouse(session, operator, code=code, name_zh=zh, name_en=en, division_code=div)
                  for code, zh, en, div in WAREHOUSES}
    for (code, zh, en, metal, unit, lot, reference, tick, band, max_lots, grade_zh, grade_en, spec, deliverable) in PRODUCTS:
        products.create_product(
            session, operator, code=code, name_zh=zh, name_en=en, metal=metal, price_unit=unit, units_per_lot=lot,
            reference_price_fen=reference, buyer_fee_per_lot_fen=200, buyer_fee_ppm=100, seller_fee_per_lot_fen=200,
            seller_fee_ppm=100, now=now,
            rules={"notice_ref": "交易中心公告〔2026〕1号", "grade_zh": grade_zh, "grade_en": grade_en, "quality_spec": spec,
                   "tick_fen": tick, "band_ppm": band, "max_order_lots": max_lots, "sessions": SESSIONS,
                   "opening_auction": OPENING_AUCTION, "deliverable_warehouses": deliverable, "settlement_min_lots": 2})
    members = {}
    for code, name, kind, division, prefix, _held in MEMBERS:
        members[code] = accounts.create_member(session, operator, code=code, name=name, kind=kind,
                                               division_code=division, enterprise_id=_enterprise_in(session, prefix),
                                               now=now)
    clients = {code: accounts.add_client(session, operator, "M010", code=code, name=name, now=now)
               for code, name in (("C01", "成都某合金厂"), ("C02", "绵阳某材料公司"))}

    links = {
        "m001": {"member": members["M001"]}, "m002": {"member": members["M002"]}, "m003": {"member": members["M003"]},
        "broker": {"member": members["M010"]}, "client1": {"member": members["M010"], "client": clients["C01"]},
        "client2": {"member": members["M010"], "client": clients["C02"]}, "trader": {"member": members["M011"]},
        "reserve": {"member": members["R001"]}, "wh_km": {"warehouse": warehouses["KM01"]},
        "wh_pzh": {"warehouse": warehouses["PZH01"]}, "wh_bt": {"warehouse": warehouses["BT01"]},
    }
    for username, password, role, _scope in users[1:]:
        user = _user(session, username, role, "510000" if role == REGULATOR else None)
        if username in links:
            accounts.link_user(session, operator, user, **links[username])

    day = trading_day(now)
    cash = {"M001": 50_000_000_00, "M002": 50_000_000_00, "M003": 50_000_000_00, "M010/C01": 20_000_000_00,
            "M010/C02": 20_000_000_00, "M010": 1_000_000_00, "M011": 30_000_000_00, "R001": 100_000_000_00}
    for index, (engine_id, amount) in enumerate(cash.items(), start=1):
        reference = f"CUSTODIAN-{day:%Y%m%d}-{index:04d}"
        accounts.import_bank_line(session, operator, bank_ref=reference, account_engine_id=engine_id, value_date=day,
                                  amount_fen=amount)
        accounts.deposit(session, operator, reference, now=now)

    catalogue = {row[0]: row for row in PRODUCTS}
    keepers = {code: principal_of(_user(session, name, "warehouse"))
               for code, name in (("KM01", "wh_km"), ("PZH01", "wh_pzh"), ("BT01", "wh_bt"))}
    held: dict[tuple[str, str], list[str]] = {}
    for code, _name, _kind, _division, _prefix, product_codes in MEMBERS:
        for product_code in product_codes:
            row = catalogue[product_code]
            unit_grams = products.GRAMS_PER_UNIT[row[4]]
            lot_grams = row[5] * unit_grams
            warehouse_code = row[13][0]
            for index in range(3):
                # Real lots weigh a little over the nominal lot size.
                receipt = receipts.register_receipt(
                    session, keepers[warehouse_code], warehouse_code=warehouse_code, product_code=product_code,
                    owner_account=code, lot_no=f"{product_code}-{day:%y%m%d}-{index + 1:02d}",
                    net_grams=10 * lot_grams + (index + 1) * lot_grams // 500, assay_certificate=f"AC-{product_code}-{index + 1:03d}",
                    assay=_assay_for(row[12]), location=f"{warehouse_code}-{index + 1:02d}", brand="演示品牌", now=now)
                held.setdefault((code, product_code), []).append(receipt.number)

    trading.session_control(session, operator, "continuous", now=now)
    principals = {name: principal_of(_user(session, name, "member")) for name in ("m001", "client1", "trader", "m002")}
    reserve = principal_of(_user(session, "reserve", "reserve_agency"))
    samples = (
        ("m001", "M001", "IN99995", "S", 4, 150_000, held[("M001", "IN99995")][:1], "demo-in-ask"),
        ("client1", "M010/C01", "IN99995", "B", 2, 150_000, [], "demo-in-bid-1"),
        ("trader", "M011", "IN99995", "B", 1, 150_000, [], "demo-in-bid-2"),
        ("m001", "M001", "CU", "S", 3, 7_000_000, held[("M001", "CU")][:1], "demo-cu-ask"),
        ("trader", "M011", "CU", "B", 2, 7_000_000, [], "demo-cu-bid"),
        ("m002", "M002", "V2O598", "S", 5, 9_520_000, held[("M002", "V2O598")][:1], "demo-v-ask"),
        ("m001", "M001", "SN", "S", 10, 23_100_000, held[("M001", "SN")][:1], "demo-sn-ask"),
        ("client1", "M010/C01", "V2O598", "B", 2, 9_480_000, [], "demo-v-bid"),
    )
    for username, account, product_code, side, lots, price, receipt_numbers, key in samples:
        trading.place_order(session, principals[username], account=account, product=product_code, side=side, lots=lots,
                            price_fen=price, key=key, receipts=receipt_numbers, now=now)
    # The reserve agency buys openly for its reserve; its orders and trades are published like anyone's.
    trading.place_order(session, reserve, account="R001", product="IN99995", side="B", lots=1, price_fen=150_000,
                        key="demo-reserve-in", now=now)
    _custodian_reports_closing_balances(session, operator, day)
    accounts.reconcile_cash(session, operator, day)
    return users


def _custodian_reports_closing_balances(session: Session, operator, day) -> None:
    """The custodian bank carries out the centre's settlement transfers between the segregated sub-accounts, so its
    closing balance of each sub-account is the money the ledger says the account holds; the demo imports those
    balances as the custodian's report of the day (any trade made later in the browser is not in it yet, and the
    end-of-day reconciliation shows it as a break until the custodian reports again)."""
    for account in session.scalars(select(TradingAccount).order_by(TradingAccount.id)):
        closing = ledger.balance(session, ledger.CASH, ledger.CNY, account.id)
        accounts.import_bank_balance(session, operator, account_engine_id=account.engine_id, day=day,
                                     closing_fen=closing)
