from django.urls import path

from pos import views

urlpatterns = [
    path("pos/receipts", views.ReceiptRead.as_view(), name="pos-receipt"),
    path("pos/receipts/calculate", views.ReceiptCalculate.as_view(), name="pos-receipt-calculate"),
    path("pos/receipts/reserve", views.ReceiptReserve.as_view(), name="pos-receipt-reserve"),
    path("pos/receipts/confirm", views.ReceiptConfirm.as_view(), name="pos-receipt-confirm"),
    path("pos/receipts/<str:external_id>/cancel", views.ReceiptCancel.as_view(), name="pos-receipt-cancel"),
    path("pos/receipts/<str:external_id>/refund", views.ReceiptRefund.as_view(), name="pos-receipt-refund"),
    path("pos/balance", views.Balance.as_view(), name="pos-balance"),
    path("pos/cards", views.CardIssue.as_view(), name="pos-cards"),
    path("pos/cards/<str:number>/bind", views.CardBind.as_view(), name="pos-card-bind"),
    path("pos/cards/<str:number>/activate", views.CardActivate.as_view(), name="pos-card-activate"),
    path("pos/members/lookup", views.MemberLookup.as_view(), name="pos-member-lookup"),
    path("pos/members", views.MemberRegister.as_view(), name="pos-members"),
    path("pos/events", views.EventReport.as_view(), name="pos-events"),
]
