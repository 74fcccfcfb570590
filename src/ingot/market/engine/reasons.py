"""Stable reason codes for every refusal the matching core can give, with zh-CN and English messages.

The codes are part of the public contract: clients and the outer layer branch on them, so a code is never renamed.
"""
from __future__ import annotations

from typing import NamedTuple

MESSAGES: dict[str, tuple[str, str]] = {
    "unknown_product": ("未知的交易品种：{product}", "unknown product: {product}"),
    "product_exists": ("交易品种已存在：{product}", "product already defined: {product}"),
    "invalid_product_definition": ("品种参数无效：{detail}", "invalid product definition: {detail}"),
    "unknown_member": ("未知的会员：{member}", "unknown member: {member}"),
    "member_exists": ("会员已存在：{member}", "member already admitted: {member}"),
    "member_suspended": ("会员已被暂停交易：{member}", "member is suspended: {member}"),
    "product_suspended": ("交易品种已暂停交易：{product}", "product is suspended: {product}"),
    "market_closed": (
        "品种 {product} 当前阶段（{phase}）不接受该指令",
        "product {product} does not accept this command in phase {phase}",
    ),
    "tif_not_allowed_in_auction": (
        "集合竞价阶段只接受当日有效或撤销前有效的限价指令",
        "the call auction accepts only DAY or GTC limit orders",
    ),
    "invalid_side": ("买卖方向无效：{side}", "invalid side: {side}"),
    "invalid_order_type": ("指令类型无效：{order_type}", "invalid order type: {order_type}"),
    "invalid_tif": ("有效期类型无效：{tif}", "invalid time in force: {tif}"),
    "market_order_tif": (
        "市价指令只能是即时成交剩余撤销（IOC）或全额成交否则撤销（FOK）",
        "a market order must be IOC or FOK",
    ),
    "non_positive_quantity": ("数量必须为正整数手数，收到 {lots}", "quantity must be a positive whole number of lots, got {lots}"),
    "quantity_above_maximum": (
        "数量 {lots} 手超过单笔最大下单量 {maximum} 手",
        "quantity {lots} lots exceeds the maximum order size of {maximum} lots",
    ),
    "non_positive_price": ("价格必须为正整数（分），收到 {price}", "price must be a positive whole number of fen, got {price}"),
    "off_tick_price": (
        "价格 {price} 分不是最小变动价位 {tick} 分的整数倍",
        "price {price} fen is not a multiple of the tick {tick} fen",
    ),
    "no_reference_price": (
        "品种 {product} 尚无上一交易日结算价，无法确定涨跌停板",
        "product {product} has no previous settlement price, so its price band is undefined",
    ),
    "price_outside_band": (
        "价格 {price} 分超出涨跌停板 [{low}, {high}] 分",
        "price {price} fen is outside the daily band [{low}, {high}] fen",
    ),
    "insufficient_cash": (
        "可用资金不足：需要 {needed} 分，可用 {available} 分",
        "insufficient cash: {needed} fen needed, {available} fen available",
    ),
    "insufficient_receipts": (
        "仓单数量不足：需要 {needed} 手，所列仓单共 {available} 手",
        "insufficient receipts: {needed} lots needed, the listed receipts hold {available} lots",
    ),
    "no_receipts_for_buy": ("买入指令不得附带仓单", "a buy order must not list receipts"),
    "unknown_receipt": ("未知的仓单：{receipt}", "unknown warehouse receipt: {receipt}"),
    "receipt_exists": ("仓单编号已存在：{receipt}", "warehouse receipt number already registered: {receipt}"),
    "receipt_not_owned": ("仓单 {receipt} 不属于会员 {member}", "warehouse receipt {receipt} does not belong to member {member}"),
    "receipt_wrong_product": (
        "仓单 {receipt} 的品种为 {receipt_product}，与指令品种 {product} 不符",
        "warehouse receipt {receipt} is for {receipt_product}, not {product}",
    ),
    "receipt_encumbered": ("仓单 {receipt} 已被其他指令占用", "warehouse receipt {receipt} is already encumbered by another order"),
    "receipt_listed_twice": ("仓单 {receipt} 在同一指令中重复列出", "warehouse receipt {receipt} is listed twice in one order"),
    "invalid_receipt": ("仓单参数无效：{detail}", "invalid warehouse receipt: {detail}"),
    "non_positive_amount": ("金额必须为正整数（分），收到 {amount}", "amount must be a positive whole number of fen, got {amount}"),
    "unknown_order": ("未知的指令或指令已终结：{order}", "unknown or finished order: {order}"),
    "not_your_order": ("指令 {order} 不属于会员 {member}", "order {order} does not belong to member {member}"),
    "amend_no_change": ("改单内容与原指令相同", "the amendment changes nothing"),
    "invalid_session_action": ("交易阶段指令无效：{action}", "invalid session action: {action}"),
    "invalid_transition": (
        "品种 {product} 不能从阶段 {phase} 执行 {action}",
        "product {product} cannot {action} from phase {phase}",
    ),
    "invalid_key": ("幂等键不能为空且不超过 128 个字符", "the idempotency key must be 1 to 128 characters"),
    "invalid_time": ("指令时间必须为非负整数微秒（UTC）", "command time must be a non-negative integer of UTC microseconds"),
}


class Rejection(NamedTuple):
    """Why a command was refused. A refused command changed nothing. (A named tuple: immutable and cheap.)"""

    code: str
    message_zh: str
    message_en: str
    field: str | None = None

    def message(self, language: str = "zh-CN") -> str:
        return self.message_en if language.startswith("en") else self.message_zh

    def as_dict(self) -> dict:
        return {"code": self.code, "msg": self.message_zh, "msg_en": self.message_en, "field": self.field}


class Refused(Exception):
    """Raised inside a handler's validation step; the core turns it into a Rejection before anything changed."""

    __slots__ = ("rejection",)

    def __init__(self, code: str, field: str | None = None, **params):
        template_zh, template_en = MESSAGES[code]
        self.rejection = Rejection(code, template_zh.format(**params), template_en.format(**params), field)
        super().__init__(self.rejection.message_en)
